// Validate one GLB with the Khronos glTF validator; print its JSON report.
import { readFile } from "node:fs/promises";
import validator from "gltf-validator";

const path = process.argv[2];
const bytes = new Uint8Array(await readFile(path));
const report = await validator.validateBytes(bytes, { uri: path, maxIssues: 200 });
console.log(JSON.stringify(report));
