// confgate web client: main page, join screen, PIN, waiting room and the
// conference itself, over the signaling WebSocket at /ws (protocol v1).
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
const state = { ws: null, pc: null, stream: null, me: null, conference: null, micMuted: !mic, login: null };
window.confgate = state; // for tests: state.pc.getStats()

function send(msg) { if (state.ws && state.ws.readyState === 1) state.ws.send(JSON.stringify({ v: 1, ...msg })); }

function start(conference, displayName, login) {
  state.conference = conference;
  state.login = login;
  notice(t('connecting'));
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  state.ws = ws;
  let loggedIn = false;
  const join = () => send({ type: 'join', conference, display_name: displayName, mic: !state.micMuted, cam, ...(pin ? { pin } : {}) });
  ws.onopen = () => send({ type: 'hello', client: 'confgate-web/1' });
  ws.onmessage = async (ev) => {
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    switch (m.type) {
      case 'welcome':
        if (login && !loggedIn && !m.user) { loggedIn = true; send({ type: 'login', user: login.user, password: login.password }); }
        else join();
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
      case 'notice': notice(t(m.code) !== m.code ? t(m.code) : m.text); break;
      case 'error':
        if (m.code === 'auth_failed') { notice(t('auth_failed')); ws.close(); showFirst(); }
        else notice(m.message);
        break;
      case 'ended': finish(`${t('ended')}: ${m.reason}`); break;
    }
  };
  ws.onclose = (ev) => { if (state.ws === ws) finish(`${t('ended')} (${ev.code} ${ev.reason})`); };
}

async function onOffer(sdp) {
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  state.pc = pc;
  pc.ontrack = (e) => {
    const a = $('remote-audio');
    a.srcObject = e.streams[0] || new MediaStream([e.track]);
    a.play().catch(() => {});
  };
  await pc.setRemoteDescription({ type: 'offer', sdp });
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const track = state.stream.getAudioTracks()[0];
    track.enabled = !state.micMuted;
    const tr = pc.getTransceivers().find((x) => x.receiver.track.kind === 'audio');
    if (tr) { tr.direction = 'sendrecv'; await tr.sender.replaceTrack(track); }
  } catch (e) {
    notice(`microphone: ${e.message}`);
  }
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  send({ type: 'answer', sdp: pc.localDescription.sdp });
  updateMicButton();
}

function renderParticipants(list) {
  const ul = $('participants');
  ul.replaceChildren(...list.map((p) => {
    const li = document.createElement('li');
    li.textContent = p.display_name + (p.id === state.me ? ` (${t('you')})` : '') + (p.audio_muted ? ' 🔇' : '');
    if (p.id === state.me) li.className = 'me';
    return li;
  }));
}

function updateMicButton() {
  const b = $('btn-mic');
  b.setAttribute('aria-pressed', String(state.micMuted));
  b.textContent = t(state.micMuted ? 'unmute_mic' : 'mute_mic');
}

function finish(text) {
  if (state.pc) { state.pc.close(); state.pc = null; }
  if (state.stream) state.stream.getTracks().forEach((tr) => tr.stop());
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  $('ended-text').textContent = text;
  show('ended');
}

// ---- screens
function showFirst() {
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

document.addEventListener('DOMContentLoaded', () => {
  translate();
  const conf = showFirst();
  if (notices.length) notice(`${t('bad_param')}: ${notices.join(', ')}`);
  $('main-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const user = $('main-user').value.trim();
    const password = $('main-pass').value;
    const displayName = $('main-name').value.trim() || user;
    if (!displayName) { notice(t('name_needed')); return; }
    start($('main-conf').value.trim(), displayName, user ? { user, password } : null);
  });
  $('join-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.micMuted = !$('join-mic').checked;
    start(conf, $('join-name').value.trim(), null);
  });
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
  if (conf && autojoin && name) start(conf, name, null);
});
