// Loads a report page in headless Chromium over the DevTools protocol (--remote-debugging-pipe: no
// network port, no npm packages), and prints one JSON object:
//   {errors: [...console errors and exceptions...], charts: {name: data points}, png: path,
//    width, height, inked: share of non-white pixels}
// Usage: node check_report.js CHROMIUM REPORT.html SCREENSHOT.png PROFILE_DIR
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const [chromium, page, png, profile] = process.argv.slice(2);
const browser = spawn(chromium, [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
  '--disable-component-update', '--disable-sync', '--disable-extensions', '--remote-debugging-pipe',
  `--user-data-dir=${profile}`, 'about:blank',
], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
let stderr = '';
browser.stderr.on('data', (d) => { stderr += d; });
const toBrowser = browser.stdio[3], fromBrowser = browser.stdio[4];

let nextId = 1, buffer = '';
const pending = new Map(), listeners = [];
fromBrowser.on('data', (chunk) => {
  buffer += chunk.toString('utf8');
  let end;
  while ((end = buffer.indexOf('\0')) >= 0) {
    const msg = JSON.parse(buffer.slice(0, end));
    buffer = buffer.slice(end + 1);
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
    } else if (msg.method) {
      listeners.forEach((l) => l(msg));
    }
  }
});
function send(method, params = {}, sessionId) {
  const id = nextId++;
  const msg = { id, method, params };
  if (sessionId) msg.sessionId = sessionId;
  toBrowser.write(JSON.stringify(msg) + '\0');
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

// Share of pixels that are not (near) white in an 8-bit RGB/RGBA PNG, sampled over every pixel.
function inkedShare(file) {
  const buf = fs.readFileSync(file);
  let pos = 8, width = 0, height = 0, colourType = 0, idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos), type = buf.toString('ascii', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') { width = data.readUInt32BE(0); height = data.readUInt32BE(4); colourType = data[9]; }
    if (type === 'IDAT') idat.push(data);
    pos += 12 + len;
  }
  const bpp = colourType === 6 ? 4 : 3, stride = width * bpp;
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const prev = Buffer.alloc(stride), cur = Buffer.alloc(stride);
  let inked = 0;
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)], line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
      let v = line[i];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) { const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c); v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c; }
      cur[i] = v & 255;
    }
    for (let x = 0; x < width; x++) if (cur[x * bpp] < 240 || cur[x * bpp + 1] < 240 || cur[x * bpp + 2] < 240) inked++;
    cur.copy(prev);
  }
  return { width, height, inked: inked / (width * height) };
}

async function main() {
  const errors = [];
  const timer = setTimeout(() => { console.log(JSON.stringify({ errors: ['timeout'], stderr })); process.exit(3); }, 60000);
  const { targetInfos } = await send('Target.getTargets');
  const target = targetInfos.find((t) => t.type === 'page');
  const { sessionId } = await send('Target.attachToTarget', { targetId: target.targetId, flatten: true });
  listeners.push((m) => {
    if (m.sessionId !== sessionId) return;
    if (m.method === 'Runtime.exceptionThrown') errors.push('exception: ' + JSON.stringify(m.params.exceptionDetails.text));
    if (m.method === 'Runtime.consoleAPICalled' && m.params.type === 'error') errors.push('console.error: ' + JSON.stringify(m.params.args));
    if (m.method === 'Log.entryAdded' && m.params.entry.level === 'error') errors.push('log: ' + m.params.entry.text);
  });
  await send('Runtime.enable', {}, sessionId);
  await send('Log.enable', {}, sessionId);
  await send('Page.enable', {}, sessionId);
  await send('Emulation.setDeviceMetricsOverride', { width: 1200, height: 900, deviceScaleFactor: 1, mobile: false }, sessionId);
  const loaded = new Promise((resolve) => listeners.push((m) => { if (m.sessionId === sessionId && m.method === 'Page.loadEventFired') resolve(); }));
  await send('Page.navigate', { url: 'file://' + path.resolve(page) }, sessionId);
  await loaded;
  const { result } = await send('Runtime.evaluate', {
    expression: `JSON.stringify(Object.fromEntries([...document.querySelectorAll('svg.chart')].map(
        (s) => [s.dataset.chart, s.querySelectorAll('.pt').length])))`,
    returnByValue: true,
  }, sessionId);
  const metrics = await send('Page.getLayoutMetrics', {}, sessionId);
  const h = Math.min(Math.ceil(metrics.cssContentSize.height), 12000);
  const shot = await send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true, clip: { x: 0, y: 0, width: 1200, height: h, scale: 1 } }, sessionId);
  fs.writeFileSync(png, Buffer.from(shot.data, 'base64'));
  clearTimeout(timer);
  console.log(JSON.stringify({ errors, charts: JSON.parse(result.value), png, ...inkedShare(png) }));
  await send('Browser.close').catch(() => {});
  browser.kill();
}
main().catch((e) => { console.log(JSON.stringify({ errors: ['driver: ' + e.message], stderr })); browser.kill(); process.exit(2); });
