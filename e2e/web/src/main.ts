// A browser page that uses tokend the way a front end does: log in, refresh,
// create, list and trade an API token, make an M2M token when the page is
// given an M2M client, and log out, once over gRPC-Web and once over
// Connect. The API is on another origin (CORS). Each step is shown as an
// <li data-transport data-step data-ok>; <body data-done> marks the end.
//
// Query parameters: api (tokend's base URL), user, password, and optionally
// m2m_client, m2m_secret and m2m_audience (repeatable).
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService } from "./gen/auth/v1/auth_pb";
import { TokenService } from "./gen/priv/tokenservice/v1alpha1/tokenservice_pb";
import { M2MOAuthService } from "./gen/m2moauthserver/pb/service_pb";

const params = new URLSearchParams(location.search);
const api = params.get("api") ?? "";
const user = params.get("user") ?? "";
const password = params.get("password") ?? "";
const m2mClient = params.get("m2m_client");
const m2mSecret = params.get("m2m_secret");
const m2mAudience = params.getAll("m2m_audience");

const list = document.getElementById("steps")!;

function show(transport: string, step: string, ok: boolean, detail: string) {
  const li = document.createElement("li");
  li.dataset.transport = transport;
  li.dataset.step = step;
  li.dataset.ok = String(ok);
  li.textContent = `${transport} ${step}: ${ok ? "ok" : "FAILED"} ${detail}`;
  list.appendChild(li);
}

// bearer adds the access token to every call of a client.
const bearer = (token: () => string): Interceptor => (next) => async (req) => {
  req.header.set("Authorization", `Bearer ${token()}`);
  return next(req);
};

async function run(name: string, make: (interceptors: Interceptor[]) => Transport) {
  let access = "";
  const step = async (label: string, f: () => Promise<string>) => {
    try {
      show(name, label, true, await f());
    } catch (e) {
      show(name, label, false, e instanceof ConnectError ? `${Code[e.code]}: ${e.rawMessage}` : String(e));
      throw e;
    }
  };
  const auth = createClient(AuthService, make([]));
  const tokens = createClient(TokenService, make([bearer(() => access)]));
  const publicTokens = createClient(TokenService, make([]));

  let refresh = "";
  await step("login", async () => {
    const r = await auth.token({ credential: { case: "passwordCredential", value: { username: user, password } } });
    access = r.accessToken;
    refresh = r.refreshToken;
    return `expires in ${r.expiresIn}s`;
  });
  await step("wrong-password", async () => {
    try {
      await auth.token({ credential: { case: "passwordCredential", value: { username: user, password: password + "x" } } });
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.Unauthenticated) return "refused: unauthenticated";
      throw e;
    }
    throw new Error("a wrong password was accepted");
  });
  await step("refresh", async () => {
    const r = await auth.refreshToken({ refreshToken: refresh });
    if (r.refreshToken === refresh) throw new Error("not rotated");
    access = r.accessToken;
    refresh = r.refreshToken;
    return "rotated";
  });
  let id = "";
  let secret = "";
  await step("create-api-token", async () => {
    const r = await tokens.createToken({ name: `browser ${name}` });
    id = r.token!.id;
    secret = r.token!.secret;
    return id;
  });
  await step("list-api-tokens", async () => {
    const r = await tokens.listTokens({});
    if (!r.tokens.some((t) => t.id === id)) throw new Error("created token not listed");
    return `${r.tokens.length} token(s)`;
  });
  await step("trade-api-token", async () => {
    const r = await publicTokens.getAccessToken({ token: secret });
    if (!r.accessToken) throw new Error("no access token");
    return `access token for ${r.expiresIn}s`;
  });
  await step("delete-api-token", async () => {
    await tokens.deleteToken({ id });
    return id;
  });
  if (m2mClient && m2mSecret) {
    const m2m = createClient(M2MOAuthService, make([]));
    await step("create-m2m-token", async () => {
      const r = await m2m.createToken({
        grantType: "client_credentials",
        clientId: m2mClient,
        clientSecret: m2mSecret,
        audience: m2mAudience,
      });
      if (!r.accessToken) throw new Error("no access token");
      return "issued";
    });
  }
  await step("logout", async () => {
    await auth.logout({ refreshToken: refresh });
    return "session revoked";
  });
}

async function main() {
  const transports: [string, (i: Interceptor[]) => Transport][] = [
    ["grpc-web", (interceptors) => createGrpcWebTransport({ baseUrl: api, interceptors })],
    ["connect", (interceptors) => createConnectTransport({ baseUrl: api, interceptors })],
  ];
  for (const [name, make] of transports) {
    try {
      await run(name, make);
    } catch {
      // shown in the list; go on with the next transport
    }
  }
  document.body.dataset.done = "true";
}

main();
