// A browser softphone: SIP.js (npm `sip.js`, loaded as ES modules from
// node_modules) in Chromium, speaking SIP over WebSocket (RFC 7118) to
// confgate's /sip. tests/sip-websocket.rs runs it.
//
// Environment: BASE_URL (http://HOST:PORT, serves /sip), DOMAIN (the server
// name), SIP_USER, PASSWORD, ARTIFACTS (screenshots, marker files), MODE:
// - `call`: raw WebSocket checks (subprotocol, OPTIONS, a malformed request,
//   keep-alive), a REGISTER with a wrong password, one with the right one,
//   a call to CONF, getStats twice, hang up, unregister;
// - `callee`: register, write ARTIFACTS/registered, wait up to WAIT_SECS
//   for an INVITE and refuse it with 486, then drop the WebSocket without
//   unregistering and write ARTIFACTS/dropped;
// - `answer`: register, write ARTIFACTS/registered, wait up to WAIT_SECS for
//   an INVITE and answer it, play what arrives, getStats twice (3 s apart),
//   stay STAY_SECS, hang up. With ANSWER_CODEC (e.g. `opus`) the answer
//   keeps only that codec (and telephone-event), as a browser preferring it.
// With REINVITE=1, `call` and `answer` also re-INVITE in the call once
// audio flows: hold (SIP.js `hold`: a=sendonly), resume, then an ICE
// restart (`offerOptions.iceRestart`), with getStats around each
// (result.reinvite: the responses, our answers' direction and ICE
// credentials, packet counts, the ICE transport after the restart).
// Prints one JSON line `RESULT {...}`.
import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const base = process.env.BASE_URL;
const mode = process.env.MODE || 'call';
const artifacts = process.env.ARTIFACTS;
mkdirSync(artifacts, { recursive: true });
const here = dirname(fileURLToPath(import.meta.url));
const sipjs = join(here, 'node_modules', 'sip.js', 'lib');
const profile = mkdtempSync(join(tmpdir(), 'confgate-sipjs-'));

// The page and SIP.js are served by playwright under the daemon's own
// origin, so the WebSocket's Origin is the server's Host.
const PAGE = `<!doctype html><meta charset="utf-8"><title>SIP.js softphone</title>
<h1>SIP.js softphone</h1><pre id="log"></pre>
<script type="module">
import * as SIP from './lib/index.js';
window.SIP = SIP;
window.sipReady = true;
</script>`;

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--autoplay-policy=no-user-gesture-required',
    `--unsafely-treat-insecure-origin-as-secure=${base}`,
  ],
  viewport: { width: 700, height: 400 },
});
const result = { mode };

// Re-INVITEs from the browser in an established call (`session` names the
// page's SIP.js session: `inviter` or `invitation`): see REINVITE above.
async function reinvites(page, session) {
  const out = {};
  const send = (opts) => page.evaluate(([name, o]) => new Promise((resolve) => {
    const s = window[name];
    s.sessionDescriptionHandlerOptionsReInvite = o;
    const done = (r, ok) => {
      const body = r.message.body || '';
      resolve({
        ok,
        status: r.message.statusCode,
        direction: (body.match(/^a=(sendrecv|sendonly|recvonly|inactive)\r?$/m) || [])[1] || null,
        ufrag: (body.match(/^a=ice-ufrag:(\S+)/m) || [])[1] || null,
        lines: body.split('\r\n').filter((l) => /^(m=|a=setup|a=ice-lite|a=fingerprint|a=rtpmap|a=mid|a=group|a=rtcp-mux)/.test(l)),
        warning: r.message.getHeader('warning') || null,
      });
    };
    s.invite({ requestDelegate: { onAccept: (r) => done(r, true), onReject: (r) => done(r, false) } })
      .catch((e) => resolve({ ok: false, status: -1, error: String(e) }));
    setTimeout(() => resolve({ ok: false, status: 0, error: 'no final response' }), 15000);
  }), [session, opts]);
  const stats = () => page.evaluate(async (name) => {
    const pc = window[name].sessionDescriptionHandler.peerConnection;
    const r = { packetsIn: 0, packetsOut: 0, pair: false, ice: pc.iceConnectionState, localUfrag: null, transportUfrag: null };
    r.localUfrag = (pc.localDescription.sdp.match(/^a=ice-ufrag:(\S+)/m) || [])[1] || null;
    r.remoteUfrag = (pc.remoteDescription.sdp.match(/^a=ice-ufrag:(\S+)/m) || [])[1] || null;
    const all = await pc.getStats();
    for (const s of all.values()) {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') r.packetsIn += s.packetsReceived || 0;
      if (s.type === 'outbound-rtp' && s.kind === 'audio') r.packetsOut += s.packetsSent || 0;
      if (s.type === 'transport') {
        r.transportUfrag = s.iceLocalUsernameFragment || null;
        const p = s.selectedCandidatePairId && all.get(s.selectedCandidatePairId);
        // A pair whose check was answered has succeeded: Chromium reports it
        // `in-progress` again while each later consent check is in flight.
        r.pair = !!p && (p.state === 'succeeded' || p.responsesReceived > 0);
        r.pairState = p ? p.state : null;
        r.pairChanges = s.selectedCandidatePairChanges || 0;
      }
    }
    return r;
  }, session);
  out.before = await stats();
  out.hold = await send({ hold: true });
  await page.waitForTimeout(1000);
  out.held1 = await stats();
  await page.waitForTimeout(2000);
  out.held2 = await stats();
  out.resume = await send({ hold: false });
  await page.waitForTimeout(1000);
  out.resumed1 = await stats();
  await page.waitForTimeout(2000);
  out.resumed2 = await stats();
  out.restart = await send({ hold: false, offerOptions: { iceRestart: true } });
  await page.waitForTimeout(3000);
  out.restarted1 = await stats();
  await page.waitForTimeout(2000);
  out.restarted2 = await stats();
  return out;
}
try {
  // The page is made here, not fetched from the server: Chromium counts it
  // as public and asks before it reaches a private address (Local Network
  // Access); a user would allow it, so the test does.
  await ctx.grantPermissions(['local-network-access'], { origin: base });
  const page = await ctx.newPage();
  page.on('console', (m) => console.error(`[page] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.error(`[page] error: ${e.message}`));
  await page.route(`${base}/softphone/**`, async (route) => {
    const path = new URL(route.request().url()).pathname.replace(/^\/softphone\//, '');
    if (path === 'index.html') {
      return route.fulfill({ status: 200, contentType: 'text/html', body: PAGE });
    }
    const file = normalize(join(sipjs, path.replace(/^lib\//, '')));
    if (!path.startsWith('lib/') || !file.startsWith(sipjs)) {
      return route.fulfill({ status: 404, body: 'not found' });
    }
    return route.fulfill({ status: 200, contentType: 'text/javascript', body: readFileSync(file) });
  });
  await page.goto(`${base}/softphone/index.html`);
  await page.waitForFunction(() => window.sipReady === true, null, { timeout: 10000 });

  const config = {
    domain: process.env.DOMAIN,
    user: process.env.SIP_USER,
    password: process.env.PASSWORD,
    conf: process.env.CONF || '',
    server: `${base.replace(/^http/, 'ws')}/sip`,
    waitSecs: Number(process.env.WAIT_SECS || '30'),
    answerCodec: process.env.ANSWER_CODEC || '',
  };
  // Helpers inside the page: a user agent, and a registration whose final
  // response is reported.
  await page.evaluate(() => {
    window.makeUa = async (c, password, delegate) => {
      const ua = new window.SIP.UserAgent({
        uri: window.SIP.UserAgent.makeURI(`sip:${c.user}@${c.domain}`),
        authorizationUsername: c.user,
        authorizationPassword: password,
        transportOptions: { server: c.server },
        logLevel: 'warn',
        sessionDescriptionHandlerFactoryOptions: { iceGatheringTimeout: 1000 },
        delegate: delegate || {},
      });
      await ua.start();
      return ua;
    };
    window.register = (ua) => new Promise((resolve) => {
      const reg = new window.SIP.Registerer(ua, { expires: 300 });
      const done = (r, ok) => resolve({
        ok,
        status: r.message.statusCode,
        contacts: r.message.getHeaders('contact'),
        warning: r.message.getHeader('warning') || null,
        reg,
      });
      reg.register({
        requestDelegate: { onAccept: (r) => done(r, true), onReject: (r) => done(r, false) },
      }).catch((e) => resolve({ ok: false, status: -1, error: String(e) }));
      setTimeout(() => resolve({ ok: false, status: 0, error: 'no final response' }), 10000);
    });
  });

  if (mode === 'call') {
    result.raw = await page.evaluate((c) => new Promise((resolve) => {
      const out = {};
      const ws = new WebSocket(c.server, 'sip');
      const queue = [];
      let waiter = null;
      ws.onmessage = (e) => {
        if (waiter) { const w = waiter; waiter = null; w(e.data); } else { queue.push(e.data); }
      };
      const next = () => new Promise((res) => {
        if (queue.length) { res(queue.shift()); return; }
        waiter = res;
        setTimeout(() => { if (waiter === res) { waiter = null; res(null); } }, 5000);
      });
      const request = (branch, callId, cseq) => [
        `OPTIONS sip:${c.domain} SIP/2.0`,
        `Via: SIP/2.0/WS probe.invalid;branch=z9hG4bK-${branch}`,
        'Max-Forwards: 70',
        `From: <sip:probe@${c.domain}>;tag=probe1`,
        `To: <sip:${c.domain}>`,
        `Call-ID: ${callId}`,
        `CSeq: ${cseq}`,
        'Content-Length: 0', '', ''].join('\r\n');
      ws.onopen = async () => {
        out.protocol = ws.protocol;
        ws.send(request('opt1', 'probe-opt1', '1 OPTIONS'));
        out.options = await next();
        ws.send(request('bad1', 'probe-bad1', 'one OPTIONS'));
        out.malformed = await next();
        ws.send('\r\n\r\n');
        out.keepalive = await next();
        ws.send(request('opt2', 'probe-opt2', '2 OPTIONS'));
        out.afterMalformed = await next();
        // A frame over the size limit closes that connection only.
        out.oversize = await new Promise((res) => {
          const big = new WebSocket(c.server, 'sip');
          big.onopen = () => big.send(request('big1', 'probe-big1', '1 OPTIONS').replace('Content-Length: 0', `X-Padding: ${'x'.repeat(70000)}\r\nContent-Length: 0`));
          big.onclose = (e) => res({ code: e.code });
          setTimeout(() => res({ code: -1 }), 5000);
        });
        ws.send(request('opt3', 'probe-opt3', '3 OPTIONS'));
        out.afterOversize = await next();
        ws.close();
        resolve(out);
      };
      ws.onerror = () => resolve({ error: 'WebSocket with the sip subprotocol failed' });
    }), config);
    // A handshake without the subprotocol is refused.
    result.noSubprotocol = await page.evaluate((c) => new Promise((resolve) => {
      const ws = new WebSocket(c.server);
      ws.onopen = () => resolve({ opened: true, protocol: ws.protocol });
      ws.onclose = (e) => resolve({ opened: false, code: e.code });
      setTimeout(() => resolve({ opened: false, code: -1 }), 5000);
    }), config);

    result.wrong = await page.evaluate(async (c) => {
      const ua = await window.makeUa(c, `${c.password}-wrong`);
      const r = await window.register(ua);
      await ua.stop();
      return { ok: r.ok, status: r.status, warning: r.warning, error: r.error };
    }, config);

    result.call = await page.evaluate(async (c) => {
      const out = {};
      const ua = await window.makeUa(c, c.password);
      window.ua = ua;
      const r = await window.register(ua);
      out.register = { ok: r.ok, status: r.status, contacts: r.contacts, error: r.error };
      window.registerer = r.reg;
      const target = window.SIP.UserAgent.makeURI(`sip:${c.conf}@${c.domain}`);
      const inviter = new window.SIP.Inviter(ua, target, {
        sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
      });
      window.inviter = inviter;
      out.established = await new Promise((resolve) => {
        inviter.stateChange.addListener((s) => {
          if (s === window.SIP.SessionState.Established) resolve(true);
          if (s === window.SIP.SessionState.Terminated) resolve(false);
        });
        inviter.invite({
          requestDelegate: {
            onReject: (resp) => { out.rejected = resp.message.statusCode; out.warning = resp.message.getHeader('warning') || null; },
          },
        }).catch((e) => { out.inviteError = String(e); resolve(false); });
        setTimeout(() => resolve(false), 20000);
      });
      if (out.established) {
        const answer = inviter.sessionDescriptionHandler.peerConnection.remoteDescription;
        out.answerLines = answer.sdp.split('\r\n').filter((l) => /^(m=|a=setup|a=ice-lite|a=fingerprint|a=rtpmap|a=candidate)/.test(l));
      }
      return out;
    }, config);

    if (result.call.established) {
      const stats = () => page.evaluate(async () => {
        const pc = window.inviter.sessionDescriptionHandler.peerConnection;
        const out = { inbound: 0, outbound: 0, packetsIn: 0, audioLevel: 0, pair: false, remote: null, conn: pc.connectionState };
        const all = await pc.getStats();
        for (const s of all.values()) {
          if (s.type === 'inbound-rtp' && s.kind === 'audio') {
            out.inbound += s.bytesReceived;
            out.packetsIn += s.packetsReceived;
            out.audioLevel = Math.max(out.audioLevel, s.audioLevel || 0);
            out.totalAudioEnergy = s.totalAudioEnergy || 0;
          }
          if (s.type === 'outbound-rtp' && s.kind === 'audio') out.outbound += s.bytesSent;
          if (s.type === 'candidate-pair' && (s.state === 'succeeded' || s.responsesReceived > 0)) {
            out.pair = true;
            const r = all.get(s.remoteCandidateId);
            out.remote = r ? `${r.address}:${r.port}` : null;
          }
        }
        return out;
      });
      await page.waitForFunction(() => ['connected', 'completed'].includes(window.inviter.sessionDescriptionHandler.peerConnection.iceConnectionState), null, { timeout: 15000 });
      // Play what is received, as a softphone does: Chromium measures the
      // audio level of what it plays out.
      await page.evaluate(() => {
        const pc = window.inviter.sessionDescriptionHandler.peerConnection;
        const stream = new MediaStream();
        for (const r of pc.getReceivers()) if (r.track) stream.addTrack(r.track);
        const audio = document.createElement('audio');
        audio.autoplay = true;
        audio.srcObject = stream;
        document.body.appendChild(audio);
        return audio.play().catch((e) => console.error(`play: ${e}`));
      });
      await page.waitForTimeout(1500);
      result.first = await stats();
      await page.waitForTimeout(3000);
      result.second = await stats();
      if (process.env.REINVITE) result.reinvite = await reinvites(page, 'inviter');
      await page.screenshot({ path: join(artifacts, 'sipjs-in-call.png') });
      await page.waitForTimeout(Number(process.env.STAY_SECS || '3') * 1000);
      result.bye = await page.evaluate(() => new Promise((resolve) => {
        window.inviter.bye({ requestDelegate: { onAccept: (r) => resolve(r.message.statusCode), onReject: (r) => resolve(r.message.statusCode) } })
          .catch((e) => resolve(String(e)));
        setTimeout(() => resolve(0), 5000);
      }));
    }
    result.unregister = await page.evaluate(() => new Promise((resolve) => {
      window.registerer.unregister({ requestDelegate: { onAccept: (r) => resolve({ status: r.message.statusCode, contacts: r.message.getHeaders('contact') }), onReject: (r) => resolve({ status: r.message.statusCode }) } })
        .catch((e) => resolve({ error: String(e) }));
      setTimeout(() => resolve({ status: 0 }), 5000);
    }));
    await page.evaluate(() => window.ua.stop());
  } else if (mode === 'answer') {
    result.register = await page.evaluate(async (c) => {
      window.invites = [];
      const ua = await window.makeUa(c, c.password, {
        onInvite: (invitation) => {
          const req = invitation.request;
          window.invites.push({ via: req.getHeader('via'), offer: req.body || '' });
          window.invitation = invitation;
          invitation.stateChange.addListener((s) => {
            if (s === window.SIP.SessionState.Established) window.established = true;
            if (s === window.SIP.SessionState.Terminated) window.terminated = true;
          });
          // Keep only the wanted codec in the answer's audio m-line.
          const only = (d) => {
            if (!c.answerCodec) return Promise.resolve(d);
            const lines = d.sdp.split('\r\n');
            const keep = new Set();
            for (const l of lines) {
              const m = /^a=rtpmap:(\d+) ([^/]+)\//.exec(l);
              if (m && (m[2].toLowerCase() === c.answerCodec.toLowerCase() || m[2] === 'telephone-event')) keep.add(m[1]);
            }
            const out = lines.filter((l) => {
              const m = /^a=(rtpmap|fmtp|rtcp-fb):(\d+)/.exec(l);
              return !m || keep.has(m[2]);
            }).map((l) => {
              if (!l.startsWith('m=audio ')) return l;
              const w = l.split(' ');
              return w.slice(0, 3).concat(w.slice(3).filter((pt) => keep.has(pt))).join(' ');
            });
            return Promise.resolve({ type: d.type, sdp: out.join('\r\n') });
          };
          invitation.accept({
            sessionDescriptionHandlerOptions: { constraints: { audio: true, video: false } },
            sessionDescriptionHandlerModifiers: [only],
          }).catch((e) => { window.acceptError = String(e); });
        },
      });
      window.ua = ua;
      const r = await window.register(ua);
      return { ok: r.ok, status: r.status, contacts: r.contacts, error: r.error };
    }, config);
    writeFileSync(join(artifacts, 'registered'), JSON.stringify(result.register));
    await page.waitForFunction(() => window.established === true || window.acceptError, null, { timeout: config.waitSecs * 1000 });
    result.established = await page.evaluate(() => window.established === true);
    result.acceptError = await page.evaluate(() => window.acceptError || null);
    result.invites = await page.evaluate(() => window.invites);
    if (result.established) {
      await page.waitForFunction(() => ['connected', 'completed'].includes(window.invitation.sessionDescriptionHandler.peerConnection.iceConnectionState), null, { timeout: 15000 });
      await page.evaluate(() => {
        const pc = window.invitation.sessionDescriptionHandler.peerConnection;
        const stream = new MediaStream();
        for (const r of pc.getReceivers()) if (r.track) stream.addTrack(r.track);
        const audio = document.createElement('audio');
        audio.autoplay = true;
        audio.srcObject = stream;
        document.body.appendChild(audio);
        return audio.play().catch((e) => console.error(`play: ${e}`));
      });
      const stats = () => page.evaluate(async () => {
        const pc = window.invitation.sessionDescriptionHandler.peerConnection;
        const out = { packetsIn: 0, bytesIn: 0, samples: 0, concealed: 0, audioLevel: 0, packetsOut: 0, codec: null, pair: false };
        const all = await pc.getStats();
        for (const s of all.values()) {
          if (s.type === 'inbound-rtp' && s.kind === 'audio') {
            out.packetsIn += s.packetsReceived || 0;
            out.bytesIn += s.bytesReceived || 0;
            out.samples += s.totalSamplesReceived || 0;
            out.concealed += s.concealedSamples || 0;
            out.audioLevel = Math.max(out.audioLevel, s.audioLevel || 0);
            const c = s.codecId && all.get(s.codecId);
            if (c) out.codec = c.mimeType;
          }
          if (s.type === 'outbound-rtp' && s.kind === 'audio') out.packetsOut += s.packetsSent || 0;
          if (s.type === 'candidate-pair' && (s.state === 'succeeded' || s.responsesReceived > 0)) out.pair = true;
        }
        return out;
      });
      await page.waitForTimeout(1500);
      result.first = await stats();
      await page.waitForTimeout(3000);
      result.second = await stats();
      if (process.env.REINVITE) result.reinvite = await reinvites(page, 'invitation');
      await page.waitForTimeout(Number(process.env.STAY_SECS || '2') * 1000);
      result.bye = await page.evaluate(() => new Promise((resolve) => {
        if (window.terminated) { resolve('already ended'); return; }
        window.invitation.bye({ requestDelegate: { onAccept: (r) => resolve(r.message.statusCode), onReject: (r) => resolve(r.message.statusCode) } })
          .catch((e) => resolve(String(e)));
        setTimeout(() => resolve(0), 5000);
      }));
    }
    await page.evaluate(() => window.ua.stop());
  } else if (mode === 'callee') {
    result.register = await page.evaluate(async (c) => {
      window.invites = [];
      const ua = await window.makeUa(c, c.password, {
        onInvite: (invitation) => {
          const req = invitation.request;
          window.invites.push({
            ruri: req.ruri.toString(),
            via: req.getHeader('via'),
            from: req.getHeader('from'),
            contentType: req.getHeader('content-type') || null,
          });
          invitation.reject({ statusCode: 486 });
        },
      });
      window.ua = ua;
      const r = await window.register(ua);
      return { ok: r.ok, status: r.status, contacts: r.contacts, error: r.error };
    }, config);
    writeFileSync(join(artifacts, 'registered'), JSON.stringify(result.register));
    await page.waitForFunction(() => window.invites.length > 0, null, { timeout: config.waitSecs * 1000 }).catch(() => {});
    await page.waitForTimeout(500);
    result.invites = await page.evaluate(() => window.invites);
    // Gone without unregistering: the registrar must forget the contact.
    await page.evaluate(() => window.ua.transport.disconnect());
    await page.waitForTimeout(500);
    writeFileSync(join(artifacts, 'dropped'), '1');
  }
} catch (e) {
  result.error = String(e && e.stack || e);
} finally {
  console.log(`RESULT ${JSON.stringify(result)}`);
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
