// Opens the page in headless Chromium, waits until it has run every step,
// saves a screenshot, and prints the steps as JSON on stdout.
//
//   node drive.mjs <page URL> <screenshot.png>
//
// CHROMIUM names the browser (default /usr/bin/chromium, Debian's).
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
if (!url || !screenshot) {
  console.error("usage: node drive.mjs <page URL> <screenshot.png>");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"], // CI runs as root
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector("body[data-done=true]", { timeout: 30000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  const steps = await page.$$eval("li[data-step]", (lis) =>
    lis.map((li) => ({ transport: li.dataset.transport, step: li.dataset.step, ok: li.dataset.ok === "true", text: li.textContent })),
  );
  console.log(JSON.stringify({ steps, errors }));
} finally {
  await browser.close();
}
