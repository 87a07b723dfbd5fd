// Writes what scripts/bench-peers.sh sends Cerbos: the HS256 token (with the `kid` Cerbos requires),
// the JWKS holding the secret as an `oct` key, and a CheckResources request for "alice reads
// feed user:bob" (allowed by read-global-read-feeds), encoded with Cerbos's own generated code, as
// binary (for the load tool) and JSON (for one check over HTTP before the load).
//
// Usage: GATEHOUSE_API_SECRET=... node encode.mjs OUT_DIR
import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { CheckResourcesRequestSchema } from "@cerbos/api/cerbos/request/v1/request_pb";

const secret = process.env.GATEHOUSE_API_SECRET;
const out = process.argv[2];
if (!secret || !out) {
  console.error("usage: GATEHOUSE_API_SECRET=... node encode.mjs OUT_DIR");
  process.exit(2);
}
const kid = "gatehouse-bench";
const b64 = (data) => Buffer.from(data).toString("base64url");
const header = b64(JSON.stringify({ alg: "HS256", typ: "JWT", kid }));
// Cerbos refuses a token without `exp`; an hour is longer than any run.
const payload = b64(
  JSON.stringify({ user_id: "alice", exp: Math.floor(Date.now() / 1000) + 3600 }),
);
const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
const token = `${header}.${payload}.${signature}`;

const jwks = { keys: [{ kty: "oct", kid, alg: "HS256", use: "sig", k: b64(secret) }] };
const request = create(CheckResourcesRequestSchema, {
  requestId: "bench",
  principal: { id: "alice", roles: ["user"] },
  resources: [
    {
      actions: ["read"],
      resource: {
        kind: "feed",
        id: "user:bob",
        attr: {
          group: { kind: { case: "stringValue", value: "user" } },
          owner: { kind: { case: "stringValue", value: "bob" } },
        },
      },
    },
  ],
  auxData: { jwt: { token } },
});
writeFileSync(join(out, "token"), token);
writeFileSync(join(out, "jwks.json"), JSON.stringify(jwks));
writeFileSync(join(out, "check.bin"), toBinary(CheckResourcesRequestSchema, request));
writeFileSync(join(out, "check.json"), toJsonString(CheckResourcesRequestSchema, request));
