// Chat in the browser:
// - two participants of a conference with chat on write to each other
//   (keyboard: Enter sends, Shift+Enter a new line; the Send button); both
//   see every line, in order, with the sender's name;
// - a flood of chat frames from one session closes that session (1008,
//   rate limited) and the others keep chatting;
// - in a conference with chat off the panel is hidden and a chat frame
//   gets an `error` with code `chat_disabled`.
// Environment: BASE_URL, ARTIFACTS, CONF (chat on), QUIET (chat off).
// Prints one JSON line `RESULT {...}`.
import { launch, newPage, shot, inRoom, report, base } from './common.mjs';

const conf = process.env.CONF;
const quiet = process.env.QUIET;
const browser = await launch();
const result = {};
const lines = (page) => page.$$eval('#chat-log li', (els) => els.map((e) => ({
  from: e.querySelector('.from').textContent, text: e.querySelector('.text').textContent,
})));

// A raw session: hello, join, then `frames` as fast as it can; resolves
// with what came back and how it closed.
const rawSession = (page, conference, name, frames) => page.evaluate(([conference, name, frames]) => new Promise((resolve) => {
  const got = [];
  const ws = new WebSocket(`ws://${location.host}/ws`);
  const say = (m) => ws.send(JSON.stringify({ v: 1, ...m }));
  ws.onopen = () => say({ type: 'hello' });
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    got.push(m.type === 'error' ? `error:${m.code}` : m.type);
    if (m.type === 'welcome') say({ type: 'join', conference, display_name: name, mic: false, cam: false });
    if (m.type === 'joined') for (const f of frames) say(f);
  };
  ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, got });
  setTimeout(() => { resolve({ code: -1, got }); ws.close(); }, 6000);
}), [conference, name, frames]);

try {
  const a = await newPage(browser, 'ann');
  const b = await newPage(browser, 'ben', { width: 390, height: 800 });
  await a.goto(`${base}/c/${conf}?name=Ann&autojoin=1&lang=en`);
  await inRoom(a);
  await b.goto(`${base}/c/${conf}?name=Ben&autojoin=1&lang=en`);
  await inRoom(b);
  result.panel = {
    visible: await a.isVisible('#chat'),
    label: await a.$eval('#chat-input', (e) => e.labels[0].textContent),
    logLive: await a.getAttribute('#chat-log', 'aria-live'),
    logTag: await a.$eval('#chat-log', (e) => e.tagName),
  };

  // Ann types and presses Enter; a Shift+Enter makes a second line.
  await a.focus('#chat-input');
  await a.keyboard.type('Hello from Ann');
  await a.keyboard.press('Shift+Enter');
  await a.keyboard.type('second line');
  await a.keyboard.press('Enter');
  result.inputAfterSend = await a.inputValue('#chat-input');
  // Ben answers with the button.
  await b.waitForFunction(() => document.querySelectorAll('#chat-log li').length >= 1, null, { timeout: 10000 });
  await b.fill('#chat-input', 'Hi Ann, Ben here <b>not bold</b>');
  await b.click('#chat-form button[type=submit]');
  for (const p of [a, b]) await p.waitForFunction(() => document.querySelectorAll('#chat-log li').length >= 2, null, { timeout: 10000 });
  result.annSees = await lines(a);
  result.benSees = await lines(b);
  result.boldTags = await b.$$eval('#chat-log b', (els) => els.length);
  await shot(a, 'chat.png');
  await shot(b, 'chat-phone.png');

  // A flood from a third session: closed by the rate limit.
  const flood = Array.from({ length: 80 }, (_, i) => ({ type: 'chat', text: `flood ${i}` }));
  result.flood = await rawSession(a, conf, 'Flood', flood);
  await a.waitForTimeout(500);
  result.floodLinesSeen = (await lines(a)).filter((l) => l.text.startsWith('flood')).length;
  await a.fill('#chat-input', 'still here');
  await a.press('#chat-input', 'Enter');
  await b.waitForFunction(() => [...document.querySelectorAll('#chat-log .text')].some((e) => e.textContent === 'still here'), null, { timeout: 10000 });
  result.afterFlood = true;
  await a.click('#btn-leave');
  await b.click('#btn-leave');

  // A conference with chat off.
  const c = await newPage(browser, 'quiet');
  await c.goto(`${base}/c/${quiet}?name=Cara&autojoin=1&lang=en`);
  await inRoom(c);
  result.quietPanelHidden = await c.isHidden('#chat');
  result.quietJoined = await c.evaluate(() => window.confgate.chat);
  result.quiet = await rawSession(c, quiet, 'Dan', [{ type: 'chat', text: 'anyone?' }]);
  await c.click('#btn-leave');
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  report(result);
  await browser.close();
}
