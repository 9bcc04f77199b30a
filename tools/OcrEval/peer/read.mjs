// Reads each image given with @gutenye/ocr-node and writes its lines to OUT/NAME.txt.
import fs from 'node:fs/promises';
import path from 'node:path';
import Ocr from '@gutenye/ocr-node';
const [out, ...images] = process.argv.slice(2);
const ocr = await Ocr.create();
for (const image of images) {
  const lines = await ocr.detect(image);
  const name = path.basename(image).replace(/\.[^.]+$/, '');
  await fs.writeFile(path.join(out, `${name}.txt`), lines.map((l) => l.text).join('\n') + '\n');
}
