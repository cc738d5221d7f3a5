// Converts one HTML page to Markdown or plain text inside a worker thread, so a slow conversion
// never holds the main event loop; the main thread terminates this worker at its deadline.
// Input (workerData): { chunks, format: 'markdown' | 'text', maxOutputChars, samples: string[] },
// where chunks are complete HTML fragments (see limitHtmlNestingChunks), converted one by one so
// a converter slower than linear stays linear in the page, and only until the output is long
// enough. Output (one message): { content, cut, renderedSamples } where renderedSamples[i] is how
// the converter renders samples[i] as paragraph text (the main thread redacts those forms too).
import { parentPort, workerData } from 'node:worker_threads';

const { chunks, format, maxOutputChars, samples } = workerData;

function escapeHtml(text) {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

let convert;
if (format === 'markdown') {
  const { NodeHtmlMarkdown } = await import('node-html-markdown');
  const converter = new NodeHtmlMarkdown();
  convert = (source) => converter.translate(source);
} else {
  const { compile } = await import('html-to-text');
  convert = compile({ wordwrap: false });
}

const renderedSamples = samples.map((sample) => convert(`<p>${escapeHtml(sample)}</p>`).trim());
const parts = [];
let length = 0;
let cut = false;
for (let index = 0; index < chunks.length; index++) {
  if (length > maxOutputChars) {
    cut = true;
    break;
  }
  const part = convert(chunks[index]).trim();
  if (part.length === 0) continue;
  parts.push(part);
  length += part.length + 2;
}
let content = parts.join('\n\n');
if (content.length > maxOutputChars) {
  content = content.slice(0, maxOutputChars);
  cut = true;
}
parentPort.postMessage({ content, cut, renderedSamples });
