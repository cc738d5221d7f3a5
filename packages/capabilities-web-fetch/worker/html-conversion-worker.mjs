// Converts one HTML page to Markdown or plain text inside a worker thread, so a slow conversion
// never holds the main event loop; the main thread terminates this worker at its deadline.
// Input (workerData): { html, format: 'markdown' | 'text', maxOutputChars, samples: string[] }.
// Output (one message): { content, cut, renderedSamples } where renderedSamples[i] is how the
// converter renders samples[i] as the text of a paragraph (the main thread redacts those forms).
import { parentPort, workerData } from 'node:worker_threads';

const { html, format, maxOutputChars, samples } = workerData;

function escapeHtml(text) {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

let convert;
if (format === 'markdown') {
  const { NodeHtmlMarkdown } = await import('node-html-markdown');
  convert = (source) => NodeHtmlMarkdown.translate(source);
} else {
  const { convert: htmlToText } = await import('html-to-text');
  convert = (source) => htmlToText(source, { wordwrap: false });
}

const renderedSamples = samples.map((sample) => convert(`<p>${escapeHtml(sample)}</p>`).trim());
const converted = convert(html);
const cut = converted.length > maxOutputChars;
parentPort.postMessage({
  content: cut ? converted.slice(0, maxOutputChars) : converted,
  cut,
  renderedSamples,
});
