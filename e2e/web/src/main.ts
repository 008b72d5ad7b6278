// A browser page that uses tokend the way a front end does: log in, refresh,
// create, list and trade an API token, make an M2M token when the page is
// given an M2M client, and log out, once over gRPC-Web and once over
// Connect. The API is on another origin (CORS). Each step is shown as an
// <li data-transport data-step data-ok>; <body data-done> marks the end.
//
// Then the same front end with sender-constrained tokens (DPoP, RFC 9449): a
// non-extractable WebCrypto ES256 key signs a proof for every call in a
// Connect interceptor (dpopInterceptor, the recipe of docs/dpop.md); the page
// logs in, refreshes, lists, sees its bound token refused as a plain Bearer,
// and logs out, again over gRPC-Web and Connect.
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

// --- DPoP -------------------------------------------------------------------

const b64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const b64json = (v: unknown) => b64url(new TextEncoder().encode(JSON.stringify(v)));

// DPoPKey is a P-256 key pair whose private half the page can use but never
// read (extractable: false): a script injected later cannot carry it away.
interface DPoPKey {
  pair: CryptoKeyPair;
  jwk: { kty: string; crv: string; x: string; y: string };
  nonce: string;
}

async function newDPoPKey(): Promise<DPoPKey> {
  const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
  const { kty, crv, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey); // the public half only
  return { pair, jwk: { kty: kty!, crv: crv!, x: x!, y: y! }, nonce: "" };
}

// proof signs a DPoP proof for method and url; with an access token, its hash (ath).
async function proof(key: DPoPKey, method: string, url: string, accessToken: string): Promise<string> {
  const claims: Record<string, unknown> = {
    jti: b64url(crypto.getRandomValues(new Uint8Array(16))),
    htm: method,
    htu: url.split(/[?#]/)[0],
    iat: Math.floor(Date.now() / 1000),
  };
  if (accessToken) {
    claims.ath = b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(accessToken))));
  }
  if (key.nonce) claims.nonce = key.nonce;
  const input = `${b64json({ typ: "dpop+jwt", alg: "ES256", jwk: key.jwk })}.${b64json(claims)}`;
  // WebCrypto's ECDSA signature is r || s, exactly what JWS wants.
  const sig = await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, key.pair.privateKey, new TextEncoder().encode(input));
  return `${input}.${b64url(new Uint8Array(sig))}`;
}

// dpopInterceptor sends a fresh proof with every call and, when token gives
// one, "Authorization: DPoP <token>". It keeps the server's DPoP-Nonce and
// retries a unary call once when the server asks for a newer one.
const dpopInterceptor = (key: DPoPKey, token: () => string): Interceptor => (next) => async (req) => {
  for (let attempt = 0; ; attempt++) {
    const at = token();
    req.header.set("DPoP", await proof(key, "POST", req.url, at));
    if (at) req.header.set("Authorization", `DPoP ${at}`);
    try {
      const res = await next(req);
      key.nonce = res.header.get("DPoP-Nonce") ?? key.nonce;
      return res;
    } catch (e) {
      const nonce = e instanceof ConnectError ? e.metadata.get("DPoP-Nonce") : null;
      if (nonce && attempt === 0 && !req.stream && String(e instanceof ConnectError ? e.rawMessage : "").startsWith("use_dpop_nonce")) {
        key.nonce = nonce;
        continue;
      }
      if (nonce) key.nonce = nonce;
      throw e;
    }
  }
};

async function runDPoP(name: string, make: (interceptors: Interceptor[]) => Transport) {
  const label = `${name}`;
  const step = async (l: string, f: () => Promise<string>) => {
    try {
      show(label, l, true, await f());
    } catch (e) {
      show(label, l, false, e instanceof ConnectError ? `${Code[e.code]}: ${e.rawMessage}` : String(e));
      throw e;
    }
  };
  const key = await newDPoPKey();
  let access = "";
  let refresh = "";
  const auth = createClient(AuthService, make([dpopInterceptor(key, () => "")]));
  const tokens = createClient(TokenService, make([dpopInterceptor(key, () => access)]));
  await step("dpop-login", async () => {
    const r = await auth.token({ credential: { case: "passwordCredential", value: { username: user, password } } });
    if (r.tokenType !== "DPoP") throw new Error(`token_type ${r.tokenType}`);
    access = r.accessToken;
    refresh = r.refreshToken;
    return "bound to the page's key";
  });
  await step("dpop-refresh", async () => {
    const r = await auth.refreshToken({ refreshToken: refresh });
    if (r.tokenType !== "DPoP" || r.refreshToken === refresh) throw new Error("not rotated or not bound");
    access = r.accessToken;
    refresh = r.refreshToken;
    return "rotated, still bound";
  });
  await step("dpop-list-api-tokens", async () => {
    const r = await tokens.listTokens({});
    return `${r.tokens.length} token(s)`;
  });
  await step("dpop-create-api-token", async () => {
    const r = await tokens.createToken({ name: `browser dpop ${name}` });
    await tokens.deleteToken({ id: r.token!.id });
    return "created and deleted";
  });
  await step("dpop-bearer-refused", async () => {
    try {
      await createClient(TokenService, make([bearer(() => access)])).listTokens({});
    } catch (e) {
      if (e instanceof ConnectError && e.code === Code.Unauthenticated) return "bound token without its proof: unauthenticated";
      throw e;
    }
    throw new Error("a bound token was accepted as Bearer");
  });
  await step("dpop-logout", async () => {
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
  if (params.get("dpop") === "1") {
    for (const [name, make] of transports) {
      try {
        await runDPoP(name, make);
      } catch {
        // shown in the list
      }
    }
  }
  document.body.dataset.done = "true";
}

main();
