// Loads a Chrome trace-event JSON file with Chrome DevTools' trace engine (the
// parser behind the Performance panel, npm @paulirish/trace_engine) and prints
// what it parsed as one JSON object: threads with their names and how many
// span entries each got, and the spans of the "dio" category.
//   node chrome_viewer.mjs NODE_MODULES_DIR FILE
import fs from 'node:fs';
import path from 'node:path';
import {pathToFileURL} from 'node:url';

const [modules, file] = process.argv.slice(2);
const base = path.join(modules, '@paulirish/trace_engine');
const Trace = await import(pathToFileURL(path.join(base, 'models/trace/trace.js')).href);
const {polyfillDOMRect} = await import(pathToFileURL(path.join(base, 'analyze-trace.mjs')).href);
polyfillDOMRect();
// URL.parse arrived in Node 20.18/22.1; Debian 12 ships Node 18.
if (typeof URL.parse !== 'function') {
  URL.parse = (url, base) => { try { return new URL(url, base); } catch { return null; } };
}

const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
const model = Trace.TraceModel.Model.createWithAllHandlers();
await model.parse(doc.traceEvents ?? doc);
const data = model.parsedTrace().data;
const threads = [];
let dio = 0, entries = 0;
const dioNames = new Set();
for (const [pid, proc] of data.Renderer.processes) {
  for (const [tid, th] of proc.threads) {
    const spans = th.entries.filter(e => e.ph === 'X');
    const d = spans.filter(e => e.cat === 'dio');
    dio += d.length;
    entries += th.entries.length;
    d.forEach(e => dioNames.add(e.name));
    threads.push({pid, tid, name: th.name ?? null, entries: th.entries.length, dio: d.length});
  }
}
const b = data.Meta.traceBounds;
console.log(JSON.stringify({threads, entries, dio_spans: dio, dio_names: [...dioNames].sort(),
                            bounds_us: {min: Number(b.min), max: Number(b.max), range: Number(b.range)}}));
