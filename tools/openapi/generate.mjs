// Generates TypeScript types from the API's OpenAPI document with openapi-typescript, mapping
// `format: binary` to Blob as openapi-typescript's documentation recommends for file uploads.
// Usage: node generate.mjs <openapi.json> <out.d.ts>
import fs from "node:fs";
import ts from "typescript";
import openapiTS, { astToString } from "openapi-typescript";

const [input, output] = process.argv.slice(2);
const BLOB = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier("Blob"));
const NULL = ts.factory.createLiteralTypeNode(ts.factory.createNull());
const ast = await openapiTS(JSON.parse(fs.readFileSync(input, "utf8")), {
  transform(schema) {
    if (schema.format === "binary") {
      return [].concat(schema.type).includes("null") ? ts.factory.createUnionTypeNode([BLOB, NULL]) : BLOB;
    }
  },
});
fs.writeFileSync(output, astToString(ast));
