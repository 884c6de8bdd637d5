// socketeer.d.ts declares exactly what socketeer.js exports, and every member of RPC.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as socketeer from "../../src/socketeer/static/socketeer.js";
import { fakeWebSocketClass } from "./fakes.mjs";

const declarations = readFileSync(
  new URL("../../src/socketeer/static/socketeer.d.ts", import.meta.url),
  "utf-8",
);

test("the declarations name every export, and only those", () => {
  const declared = [...declarations.matchAll(/^export declare (?:const|class|function) (\w+)/gm)];
  assert.deepEqual(declared.map((match) => match[1]).sort(), Object.keys(socketeer).sort());
});

test("the declarations of RPC name members that exist", () => {
  const body = declarations.slice(declarations.indexOf("export declare class RPC "));
  const members = new Set(
    [...body.matchAll(/^ {2}(?:readonly )?(\w+)[<(:?]/gm)].map((match) => match[1]),
  );
  members.delete("constructor");
  const rpc = new socketeer.RPC("ws://example.test/", { WebSocket: fakeWebSocketClass([]) });
  const missing = [...members].filter((name) => !(name in rpc));
  assert.deepEqual(missing, []);
  assert.ok(members.size >= 15, [...members].join(" "));
  const prototype = Object.getOwnPropertyNames(socketeer.RPC.prototype);
  const publicMethods = prototype.filter(
    (name) => !name.startsWith("_") && name !== "constructor",
  );
  assert.deepEqual(
    publicMethods.filter((name) => !members.has(name)),
    [],
    "public members of RPC missing from socketeer.d.ts",
  );
});
