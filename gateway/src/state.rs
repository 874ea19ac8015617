//! What the daemon's tasks share: configuration, directory, running
//! conferences, abuse guard and metrics.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::conference::{Conferences, RoomSettings};
use crate::config::Config;
use crate::directory::Directory;
use crate::metrics::Metrics;
use crate::router::AbuseGuard;

/// Shared daemon state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shared {
    config: Arc<RwLock<Arc<Config>>>,
    /// The directory.
    pub directory: Directory,
    /// Running conferences.
    pub conferences: Conferences,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Lock-outs for failed PINs and passwords.
    pub guard: Arc<Mutex<AbuseGuard>>,
}

impl Shared {
    /// Builds the state around an open directory.
    pub fn new(config: Config, directory: Directory) -> Self {
        let metrics = Arc::new(Metrics::default());
        let conferences = Conferences::new(metrics.clone(), room_settings(&config));
        let guard = Arc::new(Mutex::new(AbuseGuard::new(&config.routing)));
        Self {
            config: Arc::new(RwLock::new(Arc::new(config))),
            directory,
            conferences,
            metrics,
            guard,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Applies a reloaded configuration's reloadable parts (routing, limits,
    /// room settings); the caller handles the log filter.
    pub fn reload(&self, config: Config) {
        self.guard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reconfigure(&config.routing);
        self.conferences.reconfigure(room_settings(&config));
        *self.config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }
}

fn room_settings(c: &Config) -> RoomSettings {
    RoomSettings {
        lobby_timeout: Duration::from_secs(c.conference.lobby_timeout_secs),
        max_speakers: c.conference.max_speakers,
    }
}
