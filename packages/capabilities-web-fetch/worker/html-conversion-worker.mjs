// Converts one HTML page to Markdown or plain text in a child process of its own, so a slow
// conversion never holds the main event loop and one that exhausts its heap ends only this
// process; the parent kills it at its deadline.
// Input (the first IPC message): { chunks, format: 'markdown' | 'text', maxOutputChars, samples },
// where chunks are complete HTML fragments (see limitHtmlNestingChunks), converted one by one so
// a converter slower than linear stays linear in the page, and only until the output is long
// enough. Output (one message): { content, cut, renderedSamples } where renderedSamples[i] is how
// the converter renders samples[i] as paragraph text (the main thread redacts those forms too).
process.on('disconnect', () => process.exit(0));
const { chunks, format, maxOutputChars, samples } = await new Promise((resolve) =>
  process.once('message', resolve),
);

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
process.send({ content, cut, renderedSamples });
