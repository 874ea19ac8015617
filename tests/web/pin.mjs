// A closed conference with a PIN, in the browser:
// - "first": the join screen asks for the PIN (the form says a PIN never
//   starts with 0 and refuses one that does); a wrong PIN says so and
//   shows the attempts left; the right one joins, with media.
// - "second": three wrong PINs end the attempt, and the page says why.
// Environment: BASE_URL, ARTIFACTS, CONF, PIN (the right one), WRONG.
// Prints one JSON line `RESULT {...}`.
import { launch, newPage, shot, inRoom, stats, report, base } from './common.mjs';

const conf = process.env.CONF;
const right = process.env.PIN;
const wrong = process.env.WRONG;
const browser = await launch();
const result = {};

async function askPin(page) {
  await page.goto(`${base}/c/${conf}?name=Guest&lang=en`);
  await page.waitForSelector('#view-join:not([hidden])');
  await page.click('#join-form button[type=submit]');
  await page.waitForSelector('#view-pin:not([hidden])', { timeout: 10000 });
}

async function enter(page, pin) {
  await page.fill('#pin-input', pin);
  await page.press('#pin-input', 'Enter');
}

try {
  const a = await newPage(browser, 'first', { width: 900, height: 700 });
  await askPin(a);
  result.pinScreen = {
    focused: await a.evaluate(() => document.activeElement && document.activeElement.id),
    label: await a.$eval('#pin-input', (e) => e.labels[0].textContent),
    help: await a.textContent('#pin-help'),
    attempts: await a.textContent('#pin-attempts'),
    wrongShown: await a.isVisible('#pin-wrong'),
  };
  await shot(a, 'pin-screen.png');
  // A PIN starting with 0 is refused by the form itself: nothing is sent.
  await a.fill('#pin-input', '0' + right);
  result.leadingZero = await a.$eval('#pin-input', (e) => ({ valid: e.checkValidity(), patternMismatch: e.validity.patternMismatch }));
  await enter(a, wrong);
  await a.waitForSelector('#pin-wrong:not([hidden])', { timeout: 10000 });
  result.afterWrong = {
    alert: await a.textContent('#pin-wrong'),
    role: await a.getAttribute('#pin-wrong', 'role'),
    attempts: await a.textContent('#pin-attempts'),
    cleared: await a.inputValue('#pin-input'),
    invalid: await a.getAttribute('#pin-input', 'aria-invalid'),
  };
  await shot(a, 'pin-wrong.png');
  await enter(a, right);
  await inRoom(a);
  await a.waitForTimeout(1500);
  const s1 = await stats(a);
  await a.waitForTimeout(2500);
  const s2 = await stats(a);
  result.joined = {
    participants: await a.$$eval('#participants li', (els) => els.map((e) => e.textContent)),
    audioBytes: [s1.audioBytes, s2.audioBytes],
  };

  const b = await newPage(browser, 'second', { width: 390, height: 760 });
  await askPin(b);
  const left = [];
  for (let i = 0; i < 3; i += 1) {
    left.push(await b.textContent('#pin-attempts'));
    await enter(b, wrong);
    if (i < 2) {
      await b.waitForFunction((n) => document.querySelector('#pin-attempts').textContent !== n, left[i], { timeout: 10000 });
    }
  }
  await b.waitForSelector('#view-ended:not([hidden])', { timeout: 10000 });
  result.exhausted = { attemptsSeen: left, ended: await b.textContent('#ended-text') };
  await shot(b, 'pin-exhausted-phone.png');
  await a.click('#btn-leave');
  await a.waitForSelector('#view-ended:not([hidden])');
  result.left = true;
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  report(result);
  await browser.close();
}
