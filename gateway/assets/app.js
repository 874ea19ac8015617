// confgate web client: main page, join screen, personal account, PIN,
// waiting room and the conference itself, over the signaling WebSocket at
// /ws (protocol v1). Logging in is `POST /api/session`, which sets an
// HttpOnly session cookie; the /ws upgrade carries it, so a logged-in
// browser joins as its account without sending credentials again.
import { STRINGS } from './i18n.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const notices = [];

// ---- language
let lang = (navigator.language || 'en').slice(0, 2) === 'ru' ? 'ru' : 'en';
if (params.has('lang')) {
  const l = params.get('lang');
  if (l in STRINGS) lang = l; else notices.push(`lang=${l}`);
}
const t = (k) => STRINGS[lang][k] || STRINGS.en[k] || k;
function translate() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
}

// ---- link parameters: invalid values are ignored with a notice
function flag(name, dflt) {
  if (!params.has(name)) return dflt;
  const v = params.get(name);
  if (v === '1') return true;
  if (v === '0') return false;
  notices.push(`${name}=${v}`);
  return dflt;
}
const mic = flag('mic', true);
const cam = flag('cam', false);
const autojoin = flag('autojoin', false);
let pin = params.get('pin');
if (pin !== null && !/^[1-9][0-9]{0,15}$/.test(pin)) { notices.push('pin'); pin = null; }
let name = params.get('name');
if (name !== null && (name.trim() === '' || name.length > 64)) { notices.push('name'); name = null; }

function notice(text) { const n = $('notice'); n.textContent = text; n.hidden = !text; }
function show(view) {
  for (const s of document.querySelectorAll('main > section')) s.hidden = s.id !== `view-${view}`;
  const first = $(`view-${view}`).querySelector('input, button');
  if (first) first.focus();
}

// ---- the session
const state = {
  ws: null, pc: null, stream: null, camTrack: null, me: null, conference: null,
  micMuted: !mic, camOn: cam, account: null, user: null, names: new Map(), speaker: null,
};
window.confgate = state; // for tests: state.pc.getStats()

function send(msg) { if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ v: 1, ...msg })); }

// ---- the account session (cookie set by the server, HttpOnly)
async function api(method, path, body) {
  const r = await fetch(path, {
    method, credentials: 'same-origin',
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  let data = null;
  try { data = await r.json(); } catch { /* 204 */ }
  return { ok: r.ok, status: r.status, data };
}
async function loadSession() {
  const r = await api('GET', '/api/session');
  state.account = r.ok ? r.data : null;
  showSession();
}
async function logIn(user, password) {
  const r = await api('POST', '/api/session', { user, password });
  if (r.ok) { state.account = r.data; notice(''); showSession(); return true; }
  notice(t(r.status === 429 ? 'rate_limited' : r.status === 401 ? 'auth_failed' : 'login_failed'));
  return false;
}
async function logOut() {
  await api('DELETE', '/api/session');
  state.account = null;
  showSession();
}
function showSession() {
  const a = state.account;
  for (const el of document.querySelectorAll('.session-user')) el.textContent = a ? `${a.display_name} (${a.user})` : '';
  $('main-session').hidden = !a;
  $('main-login').hidden = !!a;
  $('join-session').hidden = !a;
  if (a && !$('main-name').value) $('main-name').value = a.display_name;
  if (a && !$('join-name').value) $('join-name').value = a.display_name;
}

// ---- personal account
async function showAccount() {
  show('account');
  await loadSession();
  if (!state.account) {
    $('account-home').hidden = true;
    $('account-login').hidden = false;
    $('account-user').focus();
    return;
  }
  const r = await api('GET', '/api/account/conferences');
  if (!r.ok) { state.account = null; return showAccount(); }
  $('account-login').hidden = true;
  $('account-home').hidden = false;
  const list = r.data.conferences;
  const href = (c) => `/c/${encodeURIComponent(c.id)}?autojoin=1${params.has('lang') ? `&lang=${lang}` : ''}`;
  $('conf-empty').hidden = list.length > 0;
  $('conf-list').replaceChildren(...list.map((c) => {
    const li = document.createElement('li');
    li.className = 'card';
    const title = document.createElement('h4');
    title.textContent = c.name || c.id;
    const meta = document.createElement('p');
    meta.textContent = `${t('conference_id')}: ${c.id} · ${t(`role_${c.role}`)}`;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'join-conf';
    b.dataset.conf = c.id;
    b.textContent = t('join_conference');
    b.setAttribute('aria-label', `${t('join_conference')}: ${c.name || c.id}`);
    b.addEventListener('click', () => { location.href = href(c); });
    li.append(title, meta, b);
    return li;
  }));
  $('menu-conferences').replaceChildren(...list.map((c) => {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = href(c);
    a.dataset.conf = c.id;
    a.textContent = c.name || c.id;
    a.setAttribute('aria-label', `${t('join_conference')}: ${c.name || c.id}`);
    li.append(a);
    return li;
  }));
}

function start(conference, displayName) {
  state.conference = conference;
  notice(t('connecting'));
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  state.ws = ws;
  const join = () => send({ type: 'join', conference, display_name: displayName, mic: !state.micMuted, cam, ...(pin ? { pin } : {}) });
  ws.onopen = () => send({ type: 'hello', client: 'confgate-web/1' });
  ws.onmessage = async (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    switch (m.type) {
      case 'welcome':
        // m.user: the session cookie's account; the join is then as that account.
        state.user = m.user || null;
        join();
        break;
      case 'pin_required':
        notice('');
        $('pin-wrong').hidden = !m.wrong;
        show('pin');
        break;
      case 'lobby': notice(''); show('lobby'); break;
      case 'joined':
        notice('');
        state.me = m.participant;
        $('room-conf').textContent = conference;
        show('room');
        break;
      case 'offer': await onOffer(m.sdp); break;
      case 'participants': renderParticipants(m.participants); break;
      case 'speaking': state.speaker = m.participant; highlightSpeaker(); break;
      case 'notice': notice(t(m.code) !== m.code ? t(m.code) : m.text); break;
      case 'error':
        notice(t(m.code) !== m.code ? t(m.code) : m.message);
        break;
      case 'ended': finish(`${t('ended')}: ${m.reason}`); break;
    }
  };
  ws.onclose = (ev) => { if (state.ws === ws) finish(`${t('ended')} (${ev.code} ${ev.reason})`); };
}

// The camera goes in the m-section with mid "1"; every other
// participant's video arrives in its own m-section "v<participant id>",
// added (or made inactive) by a new offer from the server.
const CAMERA_MID = '1';

async function openCamera() {
  try {
    const s = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 } });
    return s.getVideoTracks()[0] || null;
  } catch (e) {
    notice(`camera: ${e.message}`);
    return null;
  }
}

async function setCamera(on) {
  const tr = state.pc && state.pc.getTransceivers().find((x) => x.mid === CAMERA_MID);
  if (on && !state.camTrack) state.camTrack = await openCamera();
  if (!on && state.camTrack) { state.camTrack.stop(); state.camTrack = null; }
  state.camOn = !!state.camTrack;
  if (tr) await tr.sender.replaceTrack(state.camTrack);
  const preview = $('own-video');
  preview.srcObject = state.camTrack ? new MediaStream([state.camTrack]) : null;
  $('own-tile').classList.toggle('off', !state.camTrack);
  const b = $('btn-cam');
  b.setAttribute('aria-pressed', String(!state.camOn));
  b.textContent = t(state.camOn ? 'cam_off' : 'cam_on_btn');
}

async function onOffer(sdp) {
  const first = !state.pc;
  if (first) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    state.pc = pc;
    pc.ontrack = (e) => {
      if (e.track.kind === 'audio') {
        const a = $('remote-audio');
        a.srcObject = e.streams[0] || new MediaStream([e.track]);
        a.play().catch(() => {});
      }
    };
  }
  const pc = state.pc;
  await pc.setRemoteDescription({ type: 'offer', sdp });
  if (first) {
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const track = state.stream.getAudioTracks()[0];
      track.enabled = !state.micMuted;
      const tr = pc.getTransceivers().find((x) => x.receiver.track.kind === 'audio');
      if (tr) { tr.direction = 'sendrecv'; await tr.sender.replaceTrack(track); }
    } catch (e) {
      notice(`microphone: ${e.message}`);
    }
  }
  // The camera's m-section always sends (an empty sender until the camera
  // is on), so turning the camera on and off needs no renegotiation.
  const camTr = pc.getTransceivers().find((x) => x.mid === CAMERA_MID);
  if (camTr) {
    camTr.direction = 'sendonly';
    if (first) await setCamera(state.camOn);
  }
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  send({ type: 'answer', sdp: pc.localDescription.sdp });
  updateMicButton();
  renderGrid();
}

// One tile per other participant's video, named from the participant list.
function renderGrid() {
  const grid = $('grid');
  const live = new Set();
  for (const tr of state.pc ? state.pc.getTransceivers() : []) {
    if (!tr.mid || !tr.mid.startsWith('v') || tr.receiver.track.kind !== 'video') continue;
    if (!['recvonly', 'sendrecv'].includes(tr.currentDirection)) continue;
    const id = Number(tr.mid.slice(1));
    live.add(id);
    let tile = grid.querySelector(`[data-participant="${id}"]`);
    if (!tile) {
      tile = document.createElement('figure');
      tile.className = 'tile';
      tile.dataset.participant = String(id);
      const v = document.createElement('video');
      v.autoplay = true; v.muted = true; v.playsInline = true;
      v.srcObject = new MediaStream([tr.receiver.track]);
      const cap = document.createElement('figcaption');
      tile.append(v, cap);
      grid.append(tile);
      v.play().catch(() => {});
    }
  }
  for (const tile of grid.querySelectorAll('.tile[data-participant]')) {
    if (!live.has(Number(tile.dataset.participant))) tile.remove();
  }
  nameTiles();
  highlightSpeaker();
}

function nameTiles() {
  for (const tile of $('grid').querySelectorAll('.tile[data-participant]')) {
    const name = state.names.get(Number(tile.dataset.participant)) || '';
    tile.querySelector('figcaption').textContent = name;
    tile.querySelector('video').setAttribute('aria-label', name);
  }
}

function highlightSpeaker() {
  for (const tile of $('grid').querySelectorAll('.tile')) {
    const id = tile.id === 'own-tile' ? state.me : Number(tile.dataset.participant);
    tile.classList.toggle('speaking', state.speaker !== null && id === state.speaker);
  }
  for (const li of $('participants').querySelectorAll('li')) {
    li.classList.toggle('speaking', state.speaker !== null && Number(li.dataset.participant) === state.speaker);
  }
}

function renderParticipants(list) {
  const ul = $('participants');
  ul.replaceChildren(...list.map((p) => {
    const li = document.createElement('li');
    li.dataset.participant = String(p.id);
    li.textContent = p.display_name + (p.id === state.me ? ` (${t('you')})` : '') + (p.audio_muted ? ' 🔇' : '');
    if (p.id === state.me) li.className = 'me';
    return li;
  }));
  state.names = new Map(list.map((p) => [p.id, p.display_name]));
  $('own-name').textContent = `${state.names.get(state.me) || ''} (${t('you')})`;
  nameTiles();
  highlightSpeaker();
}

function updateMicButton() {
  const b = $('btn-mic');
  b.setAttribute('aria-pressed', String(state.micMuted));
  b.textContent = t(state.micMuted ? 'unmute_mic' : 'mute_mic');
}

function finish(text) {
  if (state.pc) { state.pc.close(); state.pc = null; }
  if (state.stream) state.stream.getTracks().forEach((tr) => tr.stop());
  if (state.camTrack) { state.camTrack.stop(); state.camTrack = null; }
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  $('ended-text').textContent = text;
  show('ended');
}

// ---- screens
function showFirst() {
  if (location.pathname === '/account') { showAccount(); return null; }
  const m = location.pathname.match(/^\/c\/([^/]+)$/);
  if (m) {
    const conf = decodeURIComponent(m[1]);
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(conf)) { notice(t('bad_conf')); show('main'); return; }
    $('join-conf').textContent = conf;
    if (name) $('join-name').value = name;
    $('join-mic').checked = mic;
    $('join-cam').checked = cam;
    show('join');
    return conf;
  }
  show('main');
  return null;
}

document.addEventListener('DOMContentLoaded', async () => {
  translate();
  const conf = showFirst();
  if (notices.length) notice(`${t('bad_param')}: ${notices.join(', ')}`);
  $('main-login-btn').addEventListener('click', async () => {
    const user = $('main-user').value.trim();
    if (!user || !$('main-pass').value) { notice(t('login_needed')); return; }
    if (await logIn(user, $('main-pass').value)) { $('main-pass').value = ''; $('main-conf').focus(); }
  });
  $('main-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const user = $('main-user').value.trim();
    if (!state.account && user) {
      if (!(await logIn(user, $('main-pass').value))) return;
      $('main-pass').value = '';
    }
    const displayName = $('main-name').value.trim() || (state.account && state.account.display_name) || '';
    if (!displayName) { notice(t('name_needed')); return; }
    start($('main-conf').value.trim(), displayName);
  });
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.micMuted = !$('join-mic').checked;
    state.camOn = $('join-cam').checked;
    start(conf, $('join-name').value.trim());
  });
  $('account-login').addEventListener('submit', async (e) => {
    e.preventDefault();
    if (await logIn($('account-user').value.trim(), $('account-pass').value)) {
      $('account-pass').value = '';
      showAccount();
    }
  });
  for (const b of document.querySelectorAll('.logout')) {
    b.addEventListener('click', async () => {
      await logOut();
      if (location.pathname === '/account') showAccount(); else $('main-user').focus();
    });
  }
  $('pin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    send({ type: 'pin', pin: $('pin-input').value.trim() });
    notice(t('connecting'));
  });
  $('lobby-cancel').addEventListener('click', () => { send({ type: 'leave' }); finish(t('left')); });
  $('btn-leave').addEventListener('click', () => { send({ type: 'leave' }); finish(t('left')); });
  $('btn-mic').addEventListener('click', () => {
    state.micMuted = !state.micMuted;
    if (state.stream) state.stream.getAudioTracks().forEach((tr) => { tr.enabled = !state.micMuted; });
    send({ type: 'mute', media: 'audio', muted: state.micMuted });
    updateMicButton();
  });
  $('btn-cam').addEventListener('click', () => setCamera(!state.camOn));
  if (location.pathname !== '/account') await loadSession();
  // Autojoin needs a name: the link's, or the logged-in account's.
  const autoName = name || (state.account && state.account.display_name);
  if (conf && autojoin && autoName) start(conf, autoName);
});
