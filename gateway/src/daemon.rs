//! `confgate serve`: start-up, the listeners, and the life cycle.
//!
//! Start-up opens the directory (creating the state on first start), binds
//! every listener — a listener that cannot bind stops start-up with a
//! message naming the address — then says `READY=1` to systemd and keeps
//! the watchdog fed. SIGTERM (or SIGINT) stops accepting, ends every call
//! with a proper hang-up and exits 0 within `server.shutdown_grace_secs`.
//! SIGHUP re-reads the configuration file and applies what can change
//! without a restart (log filter, routing, limits, room settings), and says
//! in the log which changed keys need a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::config::Config;
use crate::directory::Directory;
use crate::listen;
use crate::notify::Notifier;
use crate::state::Shared;

/// Changes the log filter of the running process.
pub type LogReload = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Runs the daemon until it is told to stop.
pub async fn serve(config_path: Option<PathBuf>, config: Config, log_reload: LogReload) -> anyhow::Result<()> {
    let notifier = Notifier::from_env();
    call::set_pii_visible(config.server.log_personal_data);
    let data_dir = config.server.data_dir.clone();
    let directory = Directory::open(&data_dir, &config.server.name)
        .await
        .with_context(|| format!("opening the directory in {}", data_dir.display()))?;
    let (token, created) = directory.admin_token().await?;
    let shared = Shared::new(config.clone(), directory.clone());
    {
        // Temporary conferences are removed from the directory when they stop.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        shared.conferences.on_stopped(tx);
        let dir = directory.clone();
        tokio::spawn(async move {
            while let Some(id) = rx.recv().await {
                if let Ok(Some(c)) = dir.find_conference(&id).await {
                    if !c.permanent && dir.remove_conference(&c.id).await.is_ok() {
                        tracing::info!(conf = %c.id, "temporary conference removed after it stopped");
                    }
                }
            }
        });
    }
    let (stop_tx, stop_rx) = watch::channel(false);

    // Bind every listener before saying ready.
    let http_addr = config.http.listen;
    let http = tokio::net::TcpListener::bind(http_addr)
        .await
        .map_err(|e| anyhow!("cannot listen for HTTP on {http_addr}: {e}"))?;
    shared.metrics.set_listener("http", true);
    let loopback = if config.loopback.enabled {
        let path = config.loopback.socket_path(&data_dir);
        let l = listen::loopback::bind(&path).map_err(|e| anyhow!("cannot start the loopback listener: {e}"))?;
        shared.metrics.set_listener("loopback", true);
        Some((l, path))
    } else {
        None
    };

    let workers = match config.relay.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let media = relay::Relay::start(relay::RelayConfig {
        bind: config.media.bind,
        port_min: config.media.port_min,
        port_max: config.media.port_max,
        workers,
        batch: 32,
        raw_send: config.relay.raw_send,
    })
    .map_err(|e| anyhow!("cannot start the media relay: {e}"))?;
    if media.raw_send() {
        tracing::info!("media relay: IPv4 media goes out through one raw socket per worker (relay.raw_send)");
    } else if config.relay.raw_send {
        tracing::info!(
            "media relay: no CAP_NET_RAW, so every UDP socket sends its own datagrams \
             (relay.raw_send needs it to send a round's IPv4 datagrams in one system call)"
        );
    }
    shared.metrics.set_relay(media.clone());
    shared.conferences.set_relay(media.clone());
    let advertise = config.media.effective_advertise();
    // The address offered for media: the first advertised one, else the
    // bind address, else (a wildcard bind) loopback.
    let media_address = advertise
        .first()
        .copied()
        .unwrap_or(if config.media.bind.is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            config.media.bind
        });
    let mut ng = None;
    if !config.relay.ng_listen.is_empty() {
        let addr: std::net::SocketAddr = config.relay.ng_listen.parse().context("relay.ng_listen")?;
        let server = relay::NgServer::start(
            addr,
            media.clone(),
            relay::NgConfig {
                advertise: media_address,
                timeout: Duration::from_secs(config.relay.timeout_secs),
                max_calls: config.relay.max_calls,
            },
        )
        .map_err(|e| anyhow!("cannot listen for the ng control protocol on {addr}: {e}"))?;
        shared.metrics.set_listener("ng", true);
        ng = Some(server);
    }

    let sip_socket = bind_listener(
        &shared,
        ("sip.udp_listen", &config.sip.udp_listen),
        "sip",
        "SIP on udp",
        listen::sip::bind,
    )
    .await?;
    let sip_tcp = bind_listener(
        &shared,
        ("sip.tcp_listen", &config.sip.tcp_listen),
        "sip_tcp",
        "SIP on tcp",
        tokio::net::TcpListener::bind,
    )
    .await?;
    let sip_tls = match listen_addr("sip.tls_listen", &config.sip.tls_listen)? {
        None => None,
        Some(addr) => {
            let acceptor = listen::sip::tls_acceptor(&config.sip.tls_certificate, &config.sip.tls_private_key)
                .map_err(|e| anyhow!("SIP over TLS: {e}"))?;
            let l = bound(
                &shared,
                "sip_tls",
                "SIP on tls",
                addr,
                tokio::net::TcpListener::bind(addr).await,
            )?;
            Some((l, acceptor))
        }
    };
    let h323_listener = bind_listener(
        &shared,
        ("h323.signalling_listen", &config.h323.signalling_listen),
        "h323",
        "H.323 call signalling on tcp",
        listen::h323::bind,
    )
    .await?;
    let ras_socket = bind_listener(
        &shared,
        ("h323.ras_listen", &config.h323.ras_listen),
        "h323_ras",
        "H.323 RAS on udp",
        listen::h323::ras::bind,
    )
    .await?;

    let mut tasks = tokio::task::JoinSet::new();
    // SIP over WebSocket: the HTTP listener hands its connections to the SIP listener.
    let sip_ws = listen::sip::ws::WsTransport::new();
    {
        let web = listen::web::WebContext::new(media.clone(), media_address)
            .map_err(|e| anyhow!("cannot start the web client: {e}"))?;
        let app = crate::http::router_with_web(shared.clone(), web, sip_ws.clone());
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = stop.changed().await;
            };
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            if let Err(e) = axum::serve(http, app).with_graceful_shutdown(shutdown).await {
                tracing::error!(error = %e, "HTTP listener failed");
            }
        });
    }
    let sip_addr = sip_socket.as_ref().and_then(|s| s.local_addr().ok());
    let sip_tcp_addr = sip_tcp.as_ref().and_then(|s| s.local_addr().ok());
    let sip_tls_addr = sip_tls.as_ref().and_then(|(s, _)| s.local_addr().ok());
    if let Some(socket) = sip_socket {
        tasks.spawn(listen::sip::serve(
            socket,
            sip_tcp,
            sip_tls,
            sip_ws,
            shared.clone(),
            media.clone(),
            media_address,
            stop_rx.clone(),
        ));
    }
    let h323_addr = h323_listener.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(l) = h323_listener {
        tasks.spawn(listen::h323::serve(
            l,
            shared.clone(),
            media.clone(),
            media_address,
            stop_rx.clone(),
        ));
    }
    let ras_addr = ras_socket.as_ref().and_then(|s| s.local_addr().ok());
    if let (Some(socket), Some(bound)) = (ras_socket, ras_addr) {
        // Addresses endpoints reach: the advertised address for wildcards.
        let reachable = |a: std::net::SocketAddr| {
            if a.ip().is_unspecified() {
                std::net::SocketAddr::new(media_address, a.port())
            } else {
                a
            }
        };
        let addresses = listen::h323::ras::Addresses {
            ras: reachable(bound),
            call_signalling: h323_addr.map(reachable),
        };
        tasks.spawn(listen::h323::ras::serve(
            socket,
            shared.clone(),
            addresses,
            stop_rx.clone(),
        ));
    }
    let loopback_path = loopback.as_ref().map(|(_, p)| p.clone());
    if let Some((listener, path)) = loopback {
        tasks.spawn(listen::loopback::serve(listener, path, shared.clone(), stop_rx.clone()));
    }

    tracing::info!(server = %config.server.name, data_dir = %data_dir.display(), "confgate {} started", env!("CARGO_PKG_VERSION"));
    println!(
        "confgate {}: server name {}",
        env!("CARGO_PKG_VERSION"),
        config.server.name
    );
    println!("  state:        {}", data_dir.display());
    println!("  HTTP:         http://{http_addr}/ (admin API under /api/v1/, /healthz, /metrics)");
    if let Some(p) = &loopback_path {
        println!("  loopback:     {}", p.display());
    }
    if let Some(a) = sip_addr {
        let tcp = sip_tcp_addr.map(|t| format!(", tcp {t}")).unwrap_or_default();
        let tls = sip_tls_addr.map(|t| format!(", tls {t}")).unwrap_or_default();
        let ws = if config.sip.websocket {
            format!(", ws ws://{http_addr}{}", listen::sip::ws::PATH)
        } else {
            String::new()
        };
        println!("  SIP:          udp {a}{tcp}{tls}{ws} (registrar, calls)");
    }
    if let Some(a) = h323_addr {
        println!("  H.323:        tcp {a} (call signalling, Fast Connect)");
    }
    if let Some(a) = ras_addr {
        println!("  H.323 RAS:    udp {a} (gatekeeper)");
    }
    if created {
        println!("  admin token:  {token}   (shown once; 'confgate admin token' prints it again)");
    } else {
        println!("  admin token:  run 'confgate admin token' to print it");
    }
    if let Some(n) = &ng {
        println!("  ng control:   {} (rtpengine protocol)", n.local_addr());
    }
    println!(
        "  media:        relay on {} with {workers} worker(s), advertising {} (ports {}-{})",
        config.media.bind,
        if advertise.is_empty() {
            "no address".into()
        } else {
            advertise.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
        },
        config.media.port_min,
        config.media.port_max
    );
    notifier.notify("READY=1");

    if let Some(every) = Notifier::watchdog_interval() {
        let n = notifier.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                t.tick().await;
                n.notify("WATCHDOG=1");
            }
        });
    }

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                notifier.notify("RELOADING=1");
                reload(&shared, config_path.as_deref(), &log_reload);
                notifier.notify("READY=1");
            }
        }
    }

    tracing::info!("stopping");
    notifier.notify("STOPPING=1");
    let grace = Duration::from_secs(shared.config().server.shutdown_grace_secs);
    let _ = stop_tx.send(true);
    let left = shared.conferences.end_all(call::EndReason::ServerShutdown, grace).await;
    if left > 0 {
        tracing::warn!(rooms = left, "conferences still running at the end of the grace period");
    }
    let deadline = tokio::time::Instant::now() + grace;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                tracing::warn!("listeners did not finish within the grace period");
                tasks.abort_all();
                break;
            }
        }
    }
    if let Some(mut n) = ng {
        n.stop();
    }
    media.shutdown();
    directory.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// A listener's address from its configuration key (empty: not served).
fn listen_addr(key: &str, value: &str) -> anyhow::Result<Option<std::net::SocketAddr>> {
    if value.is_empty() {
        return Ok(None);
    }
    value.parse().map(Some).with_context(|| key.to_string())
}

/// A bound listener, reported in `/metrics`; a bind failure names what and where.
fn bound<T>(
    shared: &Shared,
    metric: &'static str,
    what: &str,
    addr: std::net::SocketAddr,
    r: std::io::Result<T>,
) -> anyhow::Result<T> {
    let l = r.map_err(|e| anyhow!("cannot listen for {what} {addr}: {e}"))?;
    shared.metrics.set_listener(metric, true);
    Ok(l)
}

/// The listener the setting `key` = `value` asks for, bound with `bind`
/// and reported like [`bound`]; `None` when the value is empty.
async fn bind_listener<T, F>(
    shared: &Shared,
    (key, value): (&str, &str),
    metric: &'static str,
    what: &str,
    bind: impl FnOnce(std::net::SocketAddr) -> F,
) -> anyhow::Result<Option<T>>
where
    F: std::future::Future<Output = std::io::Result<T>>,
{
    let Some(addr) = listen_addr(key, value)? else {
        return Ok(None);
    };
    bound(shared, metric, what, addr, bind(addr).await).map(Some)
}

fn reload(shared: &Shared, path: Option<&std::path::Path>, log_reload: &LogReload) {
    let newer = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("reload refused, keeping the running configuration: {e}");
            return;
        }
    };
    let current = shared.config();
    let (applied, restart) = current.reloadable_from(&newer);
    if !restart.is_empty() {
        tracing::warn!(keys = %restart.join(", "), "these changes take effect only after a restart");
    }
    if newer.server.log != current.server.log {
        if let Err(e) = log_reload(&newer.server.log) {
            tracing::error!("log filter not changed: {e}");
        }
    }
    call::set_pii_visible(newer.server.log_personal_data);
    shared.reload(applied);
    tracing::info!("configuration reloaded (log filter, routing, limits, conference settings)");
}
