//! `confgate bot`: a local participant over the loopback socket. It plays a
//! tone or a WAV file into a conference and records what it hears, for
//! announcements, recordings and tests.
//!
//! Exit codes: 0 after `--duration` (or when it left by itself), 3 when
//! refused (wrong PIN, full, not found, ...), 4 when removed or the
//! conference ended early, 1 for other errors (socket, files).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use loopback::{encode_audio, encode_message, ClientMessage, Frame, FrameDecoder, ServerMessage, AUDIO_FRAME_SAMPLES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// `confgate bot` options.
#[derive(Debug, Args)]
pub struct BotArgs {
    /// Conference id to join.
    #[arg(long)]
    pub conference: String,
    /// Display name (default "bot"; with --user, overrides the account's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Join as this account (needs --password-stdin).
    #[arg(long, requires = "password_stdin")]
    pub user: Option<String>,
    /// Read the account's password from standard input.
    #[arg(long, requires = "user")]
    pub password_stdin: bool,
    /// The conference PIN.
    #[arg(long)]
    pub pin: Option<String>,
    /// What to say: `tone:HZ` or a WAV file (48 kHz, 16-bit; stereo is mixed down).
    #[arg(long, value_name = "FILE.wav|tone:HZ")]
    pub play: Option<String>,
    /// Write what the bot hears to this WAV file (48 kHz mono 16-bit).
    #[arg(long, value_name = "FILE.wav")]
    pub record: Option<PathBuf>,
    /// Seconds to stay; without it, until the conference ends or Ctrl-C.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Loopback socket (default: from the configuration).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// As a moderator, admit everyone who waits in the lobby.
    #[arg(long)]
    pub admit_lobby: bool,
}

/// Why the bot stopped early.
#[derive(Debug)]
pub enum BotError {
    /// Refused by the server (exit 3).
    Refused(String),
    /// Removed or the conference ended (exit 4).
    Ended(String),
    /// Anything else (exit 1).
    Other(String),
}

impl BotError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused(_) => 3,
            Self::Ended(_) => 4,
            Self::Other(_) => 1,
        }
    }
}

impl std::fmt::Display for BotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(m) => write!(f, "refused: {m}"),
            Self::Ended(m) => write!(f, "{m}"),
            Self::Other(m) => f.write_str(m),
        }
    }
}

/// Where audio comes from.
enum Source {
    Silence,
    Tone { hz: f64, phase: f64 },
    Samples { data: Vec<i16>, pos: usize },
}

impl Source {
    fn open(spec: Option<&str>) -> Result<Self, BotError> {
        let Some(spec) = spec else { return Ok(Self::Silence) };
        if let Some(hz) = spec.strip_prefix("tone:") {
            let hz: f64 = hz
                .parse()
                .map_err(|_| BotError::Other(format!("--play: '{hz}' is not a frequency in Hz")))?;
            if !(1.0..=23_999.0).contains(&hz) {
                return Err(BotError::Other(format!("--play: {hz} Hz is outside 1-23999 Hz")));
            }
            return Ok(Self::Tone { hz, phase: 0.0 });
        }
        Ok(Self::Samples {
            data: read_wav(Path::new(spec))?,
            pos: 0,
        })
    }

    /// The next 20 ms; `None` when a file has run out.
    fn next_frame(&mut self, out: &mut [i16; AUDIO_FRAME_SAMPLES]) -> bool {
        match self {
            Self::Silence => false,
            Self::Tone { hz, phase } => {
                let step = *hz / f64::from(mixer::SAMPLE_RATE);
                for s in out.iter_mut() {
                    *s = ((*phase * std::f64::consts::TAU).sin() * 0.3 * f64::from(i16::MAX)) as i16;
                    *phase = (*phase + step).fract();
                }
                true
            }
            Self::Samples { data, pos } => {
                if *pos >= data.len() {
                    return false;
                }
                for s in out.iter_mut() {
                    *s = data.get(*pos).copied().unwrap_or(0);
                    *pos += 1;
                }
                true
            }
        }
    }
}

fn read_wav(path: &Path) -> Result<Vec<i16>, BotError> {
    let err = |m: String| BotError::Other(format!("--play {}: {m}", path.display()));
    let mut r = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = r.spec();
    if spec.sample_rate != mixer::SAMPLE_RATE
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(err(format!(
            "{} Hz {}-bit; the bot plays 48000 Hz 16-bit PCM (convert with: sox in.wav -r 48000 -b 16 out.wav)",
            spec.sample_rate, spec.bits_per_sample
        )));
    }
    let ch = usize::from(spec.channels.max(1));
    let samples: Vec<i16> = r
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    Ok(samples
        .chunks(ch)
        .map(|c| (c.iter().map(|&s| i32::from(s)).sum::<i32>() / ch as i32) as i16)
        .collect())
}

/// How long the bot still reads after a write to the server failed.
const DRAIN_AFTER_WRITE_ERROR: Duration = Duration::from_secs(2);

/// Runs the bot.
pub async fn run(args: BotArgs, socket: PathBuf) -> Result<(), BotError> {
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| BotError::Other(format!("reading the password: {e}")))?;
        Some(s.lines().next().unwrap_or("").to_string())
    } else {
        None
    };
    let mut source = Source::open(args.play.as_deref())?;
    let mut recorder = match &args.record {
        Some(p) => Some(
            hound::WavWriter::create(
                p,
                hound::WavSpec {
                    channels: 1,
                    sample_rate: mixer::SAMPLE_RATE,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                },
            )
            .map_err(|e| BotError::Other(format!("--record {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let mut deadline = args
        .duration
        .map(|d| tokio::time::Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut stream = UnixStream::connect(&socket).await.map_err(|e| {
        BotError::Other(format!(
            "cannot connect to {}: {e} (is the daemon running?)",
            socket.display()
        ))
    })?;
    let mut out = Vec::with_capacity(4096);
    encode_message(
        &ClientMessage::Hello {
            version: loopback::PROTOCOL_VERSION,
            client: "confgate-bot".into(),
        },
        &mut out,
    );
    encode_message(
        &ClientMessage::Join {
            conference: args.conference.clone(),
            display_name: Some(args.name.clone().unwrap_or_else(|| "bot".into())),
            user: args.user.clone(),
            password,
            pin: args.pin.clone(),
        },
        &mut out,
    );
    stream
        .write_all(&out)
        .await
        .map_err(|e| BotError::Other(format!("socket: {e}")))?;

    let mut decoder = FrameDecoder::new();
    let mut heard = [0i16; AUDIO_FRAME_SAMPLES];
    let mut say = [0i16; AUDIO_FRAME_SAMPLES];
    let mut buf = vec![0u8; 16 * 1024];
    let mut joined = false;
    let mut requests: Vec<ClientMessage> = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A write that fails (the server closed the connection) ends sending,
    // not the bot: what the server said before closing, such as why the
    // call ended, may still wait to be read. It is read for a short while.
    let mut write_error: Option<std::io::Error> = None;
    let result = loop {
        let until = deadline;
        let until_deadline = async move {
            match until {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = until_deadline => break match write_error.take() {
                Some(e) => Err(BotError::Other(format!("socket: {e}"))),
                None => Ok(()),
            },
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = ticker.tick(), if joined && write_error.is_none() => {
                if source.next_frame(&mut say) {
                    out.clear();
                    encode_audio(&say, &mut out);
                    if let Err(e) = stream.write_all(&out).await {
                        write_error = Some(e);
                        deadline = drain_deadline(deadline);
                    }
                }
            }
            r = stream.read(&mut buf) => {
                let n = match r {
                    Ok(0) => break Err(BotError::Ended("the server closed the connection".into())),
                    Ok(n) => n,
                    Err(e) => break Err(BotError::Other(format!("socket: {e}"))),
                };
                decoder.extend(&buf[..n]);
                let was_joined = joined;
                let mut stop = None;
                loop {
                    match decoder.next_frame(&mut heard) {
                        Ok(Some(Frame::Audio)) => {
                            if let Some(w) = recorder.as_mut() {
                                for s in heard {
                                    if let Err(e) = w.write_sample(s) {
                                        stop = Some(Err(BotError::Other(format!("--record: {e}"))));
                                        break;
                                    }
                                }
                            }
                        }
                        Ok(Some(Frame::Control(text))) => match loopback::parse_server_message(&text) {
                            Ok(Some(msg)) => {
                                if let Some(end) = on_message(msg, &mut joined, &args, &mut requests) {
                                    stop = Some(end);
                                }
                            }
                            Ok(None) => {}
                            Err(e) => stop = Some(Err(BotError::Other(format!("server sent a bad message: {e}")))),
                        },
                        Ok(None) => break,
                        Err(e) => {
                            stop = Some(Err(BotError::Other(format!("server sent a bad frame: {e}"))));
                            break;
                        }
                    }
                    if stop.is_some() {
                        break;
                    }
                }
                if let Some(s) = stop {
                    break s;
                }
                for req in requests.drain(..) {
                    if write_error.is_some() {
                        break;
                    }
                    out.clear();
                    encode_message(&req, &mut out);
                    if let Err(e) = stream.write_all(&out).await {
                        write_error = Some(e);
                        deadline = drain_deadline(deadline);
                    }
                }
                if joined && !was_joined {
                    // Start the 20 ms clock now, not at connect: no burst of frames after a lobby wait.
                    ticker.reset();
                }
            }
        }
    };
    out.clear();
    encode_message(&ClientMessage::Leave, &mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
    if let Some(w) = recorder {
        w.finalize().map_err(|e| BotError::Other(format!("--record: {e}")))?;
    }
    result
}

/// The bot's end after a failed write: at most [`DRAIN_AFTER_WRITE_ERROR`]
/// from now, sooner if `--duration` ends sooner.
fn drain_deadline(deadline: Option<tokio::time::Instant>) -> Option<tokio::time::Instant> {
    let drain = tokio::time::Instant::now() + DRAIN_AFTER_WRITE_ERROR;
    Some(deadline.map_or(drain, |d| d.min(drain)))
}

/// Acts on one server message; `Some` ends the bot.
fn on_message(
    msg: ServerMessage,
    joined: &mut bool,
    args: &BotArgs,
    requests: &mut Vec<ClientMessage>,
) -> Option<Result<(), BotError>> {
    match msg {
        ServerMessage::Welcome { server, .. } => eprintln!("bot: connected to {server}"),
        ServerMessage::Joined {
            conference,
            participant,
            role,
        } => {
            *joined = true;
            eprintln!("bot: joined {conference} as {role} (participant {participant})");
        }
        ServerMessage::Lobby { timeout_secs } => {
            eprintln!("bot: waiting in the lobby for a moderator (up to {timeout_secs} s)");
        }
        ServerMessage::Admitted => eprintln!("bot: admitted by a moderator"),
        ServerMessage::PinRequired { attempts_left, wrong } => {
            let why = if wrong {
                format!("wrong PIN ({attempts_left} attempts left)")
            } else if args.pin.is_none() {
                "the conference needs a PIN (--pin)".to_string()
            } else {
                "the PIN was not accepted".to_string()
            };
            return Some(Err(BotError::Refused(why)));
        }
        ServerMessage::Refused { reason, message } => {
            return Some(Err(BotError::Refused(format!("{message} ({reason})"))));
        }
        ServerMessage::Participants { participants } => {
            let names: Vec<_> = participants
                .iter()
                .map(|p| {
                    if p.in_lobby {
                        format!("{} (lobby)", p.display_name)
                    } else {
                        p.display_name.clone()
                    }
                })
                .collect();
            eprintln!("bot: participants: {}", names.join(", "));
        }
        ServerMessage::Speaking { .. } => {}
        ServerMessage::Kicked { reason } => {
            return Some(Err(BotError::Ended(format!("removed from the conference ({reason})"))))
        }
        ServerMessage::Ended { reason } => {
            return Some(Err(BotError::Ended(format!("the conference ended ({reason})"))))
        }
        ServerMessage::ParticipantJoined { participant } => {
            eprintln!("bot: {} joined ({})", participant.display_name, participant.role);
        }
        ServerMessage::ParticipantLeft { participant } => eprintln!("bot: participant {participant} left"),
        ServerMessage::Muted { participant, muted } => {
            eprintln!(
                "bot: participant {participant} {}",
                if muted { "muted" } else { "unmuted" }
            );
        }
        ServerMessage::VideoStopped { participant, stopped } => {
            eprintln!(
                "bot: participant {participant} video {}",
                if stopped { "stopped" } else { "allowed" }
            );
        }
        ServerMessage::RoleChanged { participant, role } => eprintln!("bot: participant {participant} is now {role}"),
        ServerMessage::Locked { locked } => {
            eprintln!("bot: the conference is {}", if locked { "locked" } else { "unlocked" });
        }
        ServerMessage::LobbyQueue { waiting } => {
            let names: Vec<_> = waiting.iter().map(|p| p.display_name.as_str()).collect();
            eprintln!(
                "bot: waiting in the lobby: {}",
                if names.is_empty() {
                    "nobody".into()
                } else {
                    names.join(", ")
                }
            );
            if args.admit_lobby {
                for p in &waiting {
                    eprintln!("bot: admitting {}", p.display_name);
                    requests.push(ClientMessage::Admit { participant: p.id });
                }
            }
        }
        ServerMessage::Denied { action, reason } => eprintln!("bot: {action} refused: {reason}"),
        ServerMessage::Error { code, message } => {
            return Some(Err(BotError::Other(format!(
                "protocol error from the server: {message} ({code})"
            ))));
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixListener;

    fn args(socket: &Path) -> BotArgs {
        BotArgs {
            conference: "room".into(),
            name: None,
            user: None,
            password_stdin: false,
            pin: None,
            play: Some("tone:300".into()),
            record: None,
            duration: Some(10.0),
            socket: Some(socket.to_path_buf()),
            admit_lobby: false,
        }
    }

    /// A server that stops reading, so that the bot's audio fails to send
    /// (EPIPE), and only then says why the call ends and closes: the bot
    /// still reads that, and ends with the server's reason (exit 4), not
    /// with the socket error.
    #[tokio::test]
    async fn the_servers_last_word_is_read_after_a_failed_write() {
        let dir = std::env::temp_dir().join(format!("confgate-bot-drain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("loopback.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut out = Vec::new();
            encode_message(
                &ServerMessage::Welcome {
                    version: loopback::PROTOCOL_VERSION,
                    server: "test.example".into(),
                },
                &mut out,
            );
            encode_message(
                &ServerMessage::Joined {
                    conference: "room".into(),
                    participant: 1,
                    role: "guest".into(),
                },
                &mut out,
            );
            s.write_all(&out).unwrap();
            s.shutdown(std::net::Shutdown::Read).unwrap();
            // The bot sends a frame every 20 ms: these fail.
            std::thread::sleep(Duration::from_millis(300));
            out.clear();
            encode_message(
                &ServerMessage::Ended {
                    reason: "server_shutdown".into(),
                },
                &mut out,
            );
            s.write_all(&out).unwrap();
        });
        let r = run(args(&path), path.clone()).await;
        server.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let e = r.expect_err("the conference ended");
        assert_eq!(e.exit_code(), 4, "{e}");
        assert!(e.to_string().contains("server_shutdown"), "{e}");
    }
}
