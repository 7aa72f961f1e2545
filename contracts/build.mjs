// Rebuild the anchor registry's ABI and bytecode from AnchorRegistry.sol
// with the pinned solc (package.json), exactly as committed:
//
//   npm ci --prefix contracts && node contracts/build.mjs
//
// The output is deterministic (same compiler, settings and source give the
// same bytes, the metadata hash included), so `node contracts/build.mjs
// --check` fails when the committed files do not match the source;
// .ci/run runs it.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const here = path.dirname(new URL(import.meta.url).pathname);
const solc = createRequire(import.meta.url)("solc");
const source = "AnchorRegistry.sol";

const input = {
  language: "Solidity",
  sources: { [source]: { content: fs.readFileSync(path.join(here, source), "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    // London: the newest fork every permissioned EVM chain in use supports
    // (GoQuorum included); no PUSH0, no transient storage.
    evmVersion: "london",
    outputSelection: { [source]: { AnchorRegistry: ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);

const contract = output.contracts[source].AnchorRegistry;
const files = {
  "AnchorRegistry.abi.json": JSON.stringify(contract.abi, null, 2) + "\n",
  "AnchorRegistry.bin": contract.evm.bytecode.object + "\n",
};
if (process.argv.includes("--check")) {
  for (const [name, text] of Object.entries(files)) {
    const committed = fs.existsSync(path.join(here, name)) ? fs.readFileSync(path.join(here, name), "utf8") : "";
    if (committed !== text) {
      console.error(`contracts/${name} does not match ${source} (solc ${solc.version()}): run node contracts/build.mjs and commit it`);
      process.exit(1);
    }
  }
  console.log(`contracts: ABI and bytecode match ${source} (solc ${solc.version()})`);
} else {
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(here, name), text);
  console.log(`contracts: wrote ${Object.keys(files).join(", ")} (solc ${solc.version()})`);
}
