// confgate web client: main page, join screen, personal account, PIN,
// waiting room and the conference itself, over the signaling WebSocket at
// /ws (protocol v1). Logging in is `POST /api/session`, which sets an
// HttpOnly session cookie; the /ws upgrade carries it, so a logged-in
// browser joins as its account without sending credentials again.
//
// Media: the server offers, the page answers. m-section "0" is audio,
// "1" our camera, "2" our screen share; "v<id>" and "s<id>" carry another
// participant's camera and screen. When ICE drops (disconnected for a
// while, or failed) the page says so and asks for an ICE restart; the
// server answers with a new offer.
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
const fmt = (k, vars) => t(k).replace(/\{(\w+)\}/g, (_, v) => String(vars[v]));
function translate() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll('[data-t]')) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll('[data-t-label]')) el.setAttribute('aria-label', t(el.dataset.tLabel));
  for (const el of document.querySelectorAll('#own-tile, #join-preview')) el.dataset.off = t('camera_is_off');
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
// A server code's text: its translation, else the server's English.
const said = (code, text) => (t(code) !== code ? t(code) : text);

// ---- the session
const state = {
  ws: null, pc: null, stream: null, camTrack: null, previewTrack: null, screenTrack: null, me: null, conference: null,
  micMuted: !mic, camOn: cam, account: null, user: null, names: new Map(), speaker: null,
  role: null, chat: false, lobby: [],
  // Chosen devices (deviceId; '' = the browser's default).
  devices: { mic: '', cam: '', spk: '' },
  // Reconnection: a log of what the page showed, for tests and support.
  reconnecting: false, reconnects: 0, restarts: 0, netLog: [], iceTimer: null, retryTimer: null,
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
  notice(t(r.status === 429 ? 'login_rate_limited' : r.status === 401 ? 'auth_failed' : 'login_failed'));
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

// ---- devices: microphone, camera, speaker (before and during the call)
const canPickSpeaker = 'setSinkId' in HTMLMediaElement.prototype;
const audioConstraints = () => (state.devices.mic ? { deviceId: { exact: state.devices.mic } } : true);
const videoConstraints = () => ({ width: 640, height: 360, ...(state.devices.cam ? { deviceId: { exact: state.devices.cam } } : {}) });

function loadDeviceChoice() {
  try { Object.assign(state.devices, JSON.parse(localStorage.getItem('confgate.devices') || '{}')); } catch { /* none */ }
}
function saveDeviceChoice() {
  try { localStorage.setItem('confgate.devices', JSON.stringify(state.devices)); } catch { /* private mode */ }
}

async function listDevices() {
  let all = [];
  try { all = await navigator.mediaDevices.enumerateDevices(); } catch { /* no media devices */ }
  const fill = (sel, kind, key, fallback) => {
    const list = all.filter((d) => d.kind === kind && d.deviceId);
    const opts = [];
    if (!list.some((d) => d.deviceId === 'default')) {
      const o = document.createElement('option');
      o.value = '';
      o.textContent = t('default_device');
      opts.push(o);
    }
    list.forEach((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId === 'default' ? '' : d.deviceId;
      o.textContent = d.label || `${t(fallback)} ${i + 1}`;
      opts.push(o);
    });
    sel.replaceChildren(...opts);
    if (!opts.some((o) => o.value === state.devices[key])) state.devices[key] = '';
    sel.value = state.devices[key];
    sel.disabled = opts.length === 0;
  };
  fill($('dev-mic'), 'audioinput', 'mic', 'microphone');
  fill($('dev-cam'), 'videoinput', 'cam', 'camera');
  fill($('dev-spk'), 'audiooutput', 'spk', 'speaker');
  $('dev-spk').hidden = !canPickSpeaker;
  $('dev-spk').labels.forEach((l) => { l.hidden = !canPickSpeaker; });
  $('dev-spk-none').hidden = canPickSpeaker;
}

// Puts the one devices panel where the current screen wants it.
function placeDevices(slot) {
  const f = $('devices');
  $(slot).append(f);
  f.hidden = false;
}

async function applySpeaker() {
  if (!canPickSpeaker) return;
  try { await $('remote-audio').setSinkId(state.devices.spk); } catch (e) { notice(`${t('speaker')}: ${e.message}`); }
}

async function changeMicrophone() {
  if (!state.pc) return;
  try {
    const s = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints() });
    const track = s.getAudioTracks()[0];
    track.enabled = !state.micMuted;
    const tr = state.pc.getTransceivers().find((x) => x.mid === AUDIO_MID);
    if (tr) await tr.sender.replaceTrack(track);
    if (state.stream) state.stream.getTracks().forEach((x) => x.stop());
    state.stream = s;
  } catch (e) {
    notice(`${t('microphone')}: ${e.message}`);
  }
}

async function changeCamera() {
  if (!state.pc || !state.camTrack) return;
  const track = await openCamera();
  if (!track) return;
  state.camTrack.stop();
  state.camTrack = track;
  const tr = state.pc.getTransceivers().find((x) => x.mid === CAMERA_MID);
  if (tr) await tr.sender.replaceTrack(track);
  $('own-video').srcObject = new MediaStream([track]);
}

// The join screen's camera preview (with the chosen camera).
let preview = null;
async function updatePreview() {
  const want = $('join-cam').checked && !$('view-join').hidden;
  if (preview) { preview.getTracks().forEach((x) => x.stop()); preview = null; }
  if (want) {
    try { preview = await navigator.mediaDevices.getUserMedia({ video: videoConstraints() }); } catch (e) { notice(`${t('camera')}: ${e.message}`); }
    // Joined meanwhile: the room opens its own camera.
    if (state.conference && preview) { preview.getTracks().forEach((x) => x.stop()); preview = null; return; }
    listDevices();
  }
  $('join-video').srcObject = preview;
  $('join-preview').classList.toggle('off', !preview);
  $('join-preview').hidden = !want;
}

function start(conference, displayName) {
  state.conference = conference;
  state.displayName = displayName;
  // The preview's camera becomes the call's (reopening a camera just
  // closed can leave it without frames).
  if (preview) {
    const track = preview.getVideoTracks()[0];
    if (state.camOn && track && track.readyState === 'live') state.previewTrack = track;
    else preview.getTracks().forEach((x) => x.stop());
    preview = null;
  }
  for (const el of document.querySelectorAll('.conf-id')) el.textContent = conference;
  notice(t('connecting'));
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  state.ws = ws;
  const join = () => send({ type: 'join', conference, display_name: displayName, mic: !state.micMuted, cam: state.camOn, ...(pin ? { pin } : {}) });
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
      case 'pin_required': showPin(m); break;
      case 'lobby':
        notice('');
        $('lobby-name').textContent = fmt('waiting_as', { name: displayName });
        $('lobby-timeout').textContent = fmt('lobby_timeout_in', { minutes: Math.max(1, Math.round(m.timeout / 60)) });
        show('lobby');
        break;
      case 'joined':
        notice('');
        state.me = m.participant;
        state.role = m.role;
        setChat(m.chat !== false);
        $('room-conf').textContent = conference;
        placeDevices('room-devices');
        show('room');
        break;
      case 'offer': await onOffer(m.sdp); break;
      case 'participants': renderParticipants(m.participants); break;
      case 'lobby_queue': renderLobby(m.waiting); break;
      case 'speaking': state.speaker = m.participant; highlightSpeaker(); break;
      case 'chat': addChat(m); break;
      case 'notice': notice(said(m.code, m.text)); break;
      case 'error':
        if (m.code === 'chat_disabled') setChat(false);
        notice(said(m.code, m.message));
        break;
      case 'ended': finish(endText(m.reason)); break;
    }
  };
  ws.onclose = (ev) => { if (state.ws === ws) finish(`${t('ended')} (${ev.code} ${ev.reason})`); };
}

// A reason code as a sentence.
function endText(reason) {
  const k = `reason_${reason}`;
  return t(k) !== k ? t(k) : `${t('ended')}: ${reason}`;
}

// ---- PIN
function showPin(m) {
  notice('');
  const input = $('pin-input');
  input.value = '';
  $('pin-wrong').hidden = !m.wrong;
  input.setAttribute('aria-invalid', String(!!m.wrong));
  $('pin-attempts').textContent = fmt(m.attempts_left === 1 ? 'pin_attempt_left' : 'pin_attempts_left', { n: m.attempts_left });
  show('pin');
  input.focus();
}

// ---- moderators: the waiting room
function renderLobby(list) {
  state.lobby = list;
  const mod = state.role === 'moderator';
  $('lobby-panel').hidden = !mod || list.length === 0;
  $('lobby-list').replaceChildren(...list.map((p) => {
    const li = document.createElement('li');
    li.dataset.participant = String(p.id);
    const n = document.createElement('span');
    n.className = 'who';
    n.textContent = p.display_name;
    const admit = document.createElement('button');
    admit.type = 'button';
    admit.className = 'admit';
    admit.textContent = t('admit');
    admit.setAttribute('aria-label', fmt('admit_who', { name: p.display_name }));
    admit.addEventListener('click', () => send({ type: 'moderate', target: p.id, action: 'admit' }));
    const reject = document.createElement('button');
    reject.type = 'button';
    reject.className = 'reject secondary';
    reject.textContent = t('reject');
    reject.setAttribute('aria-label', fmt('reject_who', { name: p.display_name }));
    reject.addEventListener('click', () => send({ type: 'moderate', target: p.id, action: 'reject' }));
    li.append(n, admit, reject);
    return li;
  }));
}

// ---- chat
function setChat(on) {
  state.chat = on;
  $('chat').hidden = !on;
}

function addChat(m) {
  const li = document.createElement('li');
  if (m.from === state.me) li.className = 'mine';
  const who = document.createElement('strong');
  who.className = 'from';
  who.textContent = m.from === state.me ? `${m.display_name} (${t('you')})` : m.display_name;
  const when = document.createElement('time');
  const now = new Date();
  when.dateTime = now.toISOString();
  when.textContent = now.toLocaleTimeString(lang, { hour: '2-digit', minute: '2-digit' });
  const text = document.createElement('p');
  text.className = 'text';
  text.textContent = m.text;
  li.append(who, ' ', when, text);
  const log = $('chat-log');
  log.append(li);
  while (log.children.length > 500) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

function sendChat() {
  const input = $('chat-input');
  const text = input.value.trim();
  if (!text) return;
  send({ type: 'chat', text: text.slice(0, 2000) });
  input.value = '';
  input.focus();
}

// The camera goes in the m-section with mid "1", the screen share in "2";
// every other participant's camera arrives in its own m-section
// "v<participant id>" and screen in "s<participant id>", added (or made
// inactive) by a new offer from the server.
const AUDIO_MID = '0';
const CAMERA_MID = '1';
const SCREEN_MID = '2';

async function openCamera() {
  try {
    const s = await navigator.mediaDevices.getUserMedia({ video: videoConstraints() });
    return s.getVideoTracks()[0] || null;
  } catch (e) {
    notice(`${t('camera')}: ${e.message}`);
    return null;
  }
}

async function setCamera(on) {
  const tr = state.pc && state.pc.getTransceivers().find((x) => x.mid === CAMERA_MID);
  if (on && !state.camTrack) {
    const kept = state.previewTrack;
    state.previewTrack = null;
    state.camTrack = kept && kept.readyState === 'live' ? kept : await openCamera();
  }
  if (!on && state.camTrack) { state.camTrack.stop(); state.camTrack = null; }
  state.camOn = !!state.camTrack;
  if (tr) await tr.sender.replaceTrack(state.camTrack);
  const pv = $('own-video');
  pv.srcObject = state.camTrack ? new MediaStream([state.camTrack]) : null;
  $('own-tile').classList.toggle('off', !state.camTrack);
  const b = $('btn-cam');
  b.setAttribute('aria-pressed', String(!state.camOn));
  b.textContent = t(state.camOn ? 'cam_off' : 'cam_on_btn');
  send({ type: 'mute', media: 'video', muted: !state.camOn });
}

// ---- screen sharing: a second video of our own, in m-section "2"
async function setScreen(on) {
  const tr = state.pc && state.pc.getTransceivers().find((x) => x.mid === SCREEN_MID);
  if (on && !state.screenTrack) {
    if (!tr) { notice(t('screen_unavailable')); return; }
    try {
      const s = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      state.screenTrack = s.getVideoTracks()[0] || null;
    } catch (e) {
      notice(`${t('share_screen')}: ${e.message}`);
      return;
    }
    if (!state.screenTrack) return;
    // Ended from the browser's own "stop sharing" control.
    state.screenTrack.addEventListener('ended', () => setScreen(false));
  }
  if (!on && state.screenTrack) { state.screenTrack.stop(); state.screenTrack = null; }
  if (tr) await tr.sender.replaceTrack(state.screenTrack);
  send({ type: 'screen', sharing: !!state.screenTrack });
  $('own-screen').srcObject = state.screenTrack ? new MediaStream([state.screenTrack]) : null;
  $('own-screen-tile').hidden = !state.screenTrack;
  const b = $('btn-screen');
  b.setAttribute('aria-pressed', String(!!state.screenTrack));
  b.textContent = t(state.screenTrack ? 'stop_sharing' : 'share_screen');
}

// ---- reconnecting: ICE restart asked of the server
function netStatus(code) {
  const el = $('net-status');
  el.hidden = !code;
  el.className = code || '';
  el.textContent = code ? t(code) : '';
  if (code) state.netLog.push({ code, at: Date.now() });
}

const RESTART_LIMIT = 10;
function restartIce() {
  if (!state.pc || !state.ws) return;
  if (!state.reconnecting) { state.reconnecting = true; state.reconnects += 1; state.restarts = 0; }
  if (state.restarts >= RESTART_LIMIT) { netStatus('reconnect_failed'); return; }
  state.restarts += 1;
  netStatus('reconnecting');
  send({ type: 'ice_restart' });
  clearTimeout(state.retryTimer);
  // No luck in a while (the path is still down, or the offer was lost): again.
  state.retryTimer = setTimeout(() => {
    if (state.reconnecting && state.pc && !['connected', 'completed'].includes(state.pc.iceConnectionState)) restartIce();
  }, 8000);
}

function watchIce(pc) {
  pc.addEventListener('iceconnectionstatechange', () => {
    if (pc !== state.pc) return;
    const s = pc.iceConnectionState;
    clearTimeout(state.iceTimer);
    if (s === 'disconnected') {
      // Brief drops heal by themselves; a few seconds of it asks for a restart.
      state.iceTimer = setTimeout(() => {
        if (['disconnected', 'failed'].includes(pc.iceConnectionState)) restartIce();
      }, 2500);
    } else if (s === 'failed') {
      restartIce();
    } else if (s === 'connected' || s === 'completed') {
      clearTimeout(state.retryTimer);
      if (state.reconnecting) {
        state.reconnecting = false;
        netStatus('reconnected');
        setTimeout(() => { if (!state.reconnecting && $('net-status').className === 'reconnected') netStatus(null); }, 4000);
      }
    }
  });
}

async function onOffer(sdp) {
  const first = !state.pc;
  if (first) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    state.pc = pc;
    watchIce(pc);
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
      state.stream = await navigator.mediaDevices.getUserMedia({ audio: audioConstraints() });
      const track = state.stream.getAudioTracks()[0];
      track.enabled = !state.micMuted;
      const tr = pc.getTransceivers().find((x) => x.receiver.track.kind === 'audio');
      if (tr) { tr.direction = 'sendrecv'; await tr.sender.replaceTrack(track); }
    } catch (e) {
      notice(`${t('microphone')}: ${e.message}`);
    }
    applySpeaker();
  }
  // The camera's and the screen's m-sections always send (an empty sender
  // until the camera is on or a screen is shared), so turning either on
  // and off needs no renegotiation.
  const camTr = pc.getTransceivers().find((x) => x.mid === CAMERA_MID);
  if (camTr) {
    camTr.direction = 'sendonly';
    if (first) await setCamera(state.camOn);
  }
  const screenTr = pc.getTransceivers().find((x) => x.mid === SCREEN_MID);
  if (screenTr) screenTr.direction = 'sendonly';
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  send({ type: 'answer', sdp: pc.localDescription.sdp });
  updateMicButton();
  renderGrid();
  if (first) listDevices();
}

// One tile per other participant's camera and one per shared screen,
// named from the participant list.
function renderGrid() {
  const grid = $('grid');
  const live = new Set();
  for (const tr of state.pc ? state.pc.getTransceivers() : []) {
    if (!tr.mid || !/^[vs]\d+$/.test(tr.mid) || tr.receiver.track.kind !== 'video') continue;
    if (!['recvonly', 'sendrecv'].includes(tr.currentDirection)) continue;
    const screen = tr.mid[0] === 's';
    const id = Number(tr.mid.slice(1));
    const attr = screen ? 'data-screen' : 'data-participant';
    live.add(tr.mid);
    let tile = grid.querySelector(`[${attr}="${id}"]`);
    if (!tile) {
      tile = document.createElement('figure');
      tile.className = screen ? 'tile screen' : 'tile';
      tile.setAttribute(attr, String(id));
      const v = document.createElement('video');
      v.autoplay = true; v.muted = true; v.playsInline = true;
      v.srcObject = new MediaStream([tr.receiver.track]);
      const cap = document.createElement('figcaption');
      tile.append(v, cap);
      // Screens first: they are what people look at.
      if (screen) grid.prepend(tile); else grid.append(tile);
      v.play().catch(() => {});
    }
  }
  for (const tile of grid.querySelectorAll('.tile[data-participant], .tile[data-screen]')) {
    const mid = tile.dataset.screen !== undefined ? `s${tile.dataset.screen}` : `v${tile.dataset.participant}`;
    if (!live.has(mid)) tile.remove();
  }
  nameTiles();
  highlightSpeaker();
}

function nameTiles() {
  for (const tile of $('grid').querySelectorAll('.tile[data-participant], .tile[data-screen]')) {
    const screen = tile.dataset.screen !== undefined;
    const who = state.names.get(Number(screen ? tile.dataset.screen : tile.dataset.participant)) || '';
    const label = screen ? fmt('screen_of', { name: who }) : who;
    tile.querySelector('figcaption').textContent = label;
    tile.querySelector('video').setAttribute('aria-label', label);
  }
}

function highlightSpeaker() {
  for (const tile of $('grid').querySelectorAll('.tile:not(.screen)')) {
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
    const label = document.createElement('span');
    label.textContent = p.display_name + (p.id === state.me ? ` (${t('you')})` : '') + (p.audio_muted ? ` (${t('muted_tag')})` : '');
    li.append(label);
    if (p.id === state.me) li.className = 'me';
    // Moderators mute or remove the others.
    if (state.role === 'moderator' && p.id !== state.me) {
      const act = (cls, key, action, disabled) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = `secondary small ${cls}`;
        b.textContent = t(key);
        b.disabled = disabled;
        b.setAttribute('aria-label', `${t(key)}: ${p.display_name}`);
        b.addEventListener('click', () => send({ type: 'moderate', target: p.id, action }));
        return b;
      };
      li.append(act('mute-participant', 'mute_participant', 'mute_audio', p.audio_muted),
        act('remove-participant', 'remove_participant', 'remove', false));
    }
    return li;
  }));
  $('btn-end').hidden = state.role !== 'moderator';
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
  clearTimeout(state.iceTimer);
  clearTimeout(state.retryTimer);
  if (state.pc) { state.pc.close(); state.pc = null; }
  if (state.stream) state.stream.getTracks().forEach((tr) => tr.stop());
  if (state.camTrack) { state.camTrack.stop(); state.camTrack = null; }
  if (state.screenTrack) { state.screenTrack.stop(); state.screenTrack = null; }
  if (preview) { preview.getTracks().forEach((x) => x.stop()); preview = null; }
  if (state.previewTrack) { state.previewTrack.stop(); state.previewTrack = null; }
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  notice('');
  $('net-status').hidden = true;
  $('ended-text').textContent = text;
  show('ended');
}

// ---- screens
function showFirst() {
  if (location.pathname === '/account') { showAccount(); return null; }
  const m = location.pathname.match(/^\/c\/([^/]+)$/);
  if (m) {
    const conf = decodeURIComponent(m[1]);
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(conf)) { notice(t('bad_conf')); show('main'); return null; }
    $('join-conf').textContent = conf;
    if (name) $('join-name').value = name;
    $('join-mic').checked = mic;
    $('join-cam').checked = cam;
    placeDevices('join-devices');
    show('join');
    listDevices();
    updatePreview();
    return conf;
  }
  show('main');
  return null;
}

document.addEventListener('DOMContentLoaded', async () => {
  translate();
  loadDeviceChoice();
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
  $('join-cam').addEventListener('change', updatePreview);
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
    $('pin-wrong').hidden = true;
    notice(t('connecting'));
  });
  $('pin-cancel').addEventListener('click', () => { send({ type: 'leave' }); finish(t('left')); });
  $('lobby-cancel').addEventListener('click', () => { send({ type: 'leave' }); finish(t('left')); });
  $('btn-leave').addEventListener('click', () => { send({ type: 'leave' }); finish(t('left')); });
  $('btn-mic').addEventListener('click', () => {
    state.micMuted = !state.micMuted;
    if (state.stream) state.stream.getAudioTracks().forEach((tr) => { tr.enabled = !state.micMuted; });
    send({ type: 'mute', media: 'audio', muted: state.micMuted });
    updateMicButton();
  });
  $('btn-cam').addEventListener('click', () => setCamera(!state.camOn));
  $('btn-end').addEventListener('click', () => send({ type: 'end' }));
  $('btn-screen').addEventListener('click', () => setScreen(!state.screenTrack));
  if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) $('btn-screen').hidden = true;
  $('btn-devices').addEventListener('click', () => {
    const panel = $('room-devices');
    panel.hidden = !panel.hidden;
    $('btn-devices').setAttribute('aria-expanded', String(!panel.hidden));
    if (!panel.hidden) { listDevices(); $('dev-mic').focus(); }
  });
  $('dev-mic').addEventListener('change', (e) => { state.devices.mic = e.target.value; saveDeviceChoice(); changeMicrophone(); });
  $('dev-cam').addEventListener('change', (e) => {
    state.devices.cam = e.target.value;
    saveDeviceChoice();
    if (state.pc) changeCamera(); else updatePreview();
  });
  $('dev-spk').addEventListener('change', (e) => { state.devices.spk = e.target.value; saveDeviceChoice(); applySpeaker(); });
  if (navigator.mediaDevices) navigator.mediaDevices.addEventListener('devicechange', listDevices);
  $('chat-form').addEventListener('submit', (e) => { e.preventDefault(); sendChat(); });
  $('chat-input').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendChat(); }
  });
  if (location.pathname !== '/account') await loadSession();
  // Autojoin needs a name: the link's, or the logged-in account's.
  const autoName = name || (state.account && state.account.display_name);
  if (conf && autojoin && autoName) start(conf, autoName);
});
