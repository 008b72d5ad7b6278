-- wrk script: GetAccessToken over Connect JSON with one API token secret.
--   SECRET=$(cat secret.txt) wrk -t2 -c32 -d30s -s bench/getaccesstoken.lua http://127.0.0.1:8080
wrk.method = "POST"
wrk.path = "/priv.tokenservice.v1alpha1.TokenService/GetAccessToken"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"token":"' .. os.getenv("SECRET") .. '"}'

function done(summary, latency, requests)
  io.write(string.format("requests/s %.0f  p50 %.2f ms  p99 %.2f ms  non-2xx %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status))
end
