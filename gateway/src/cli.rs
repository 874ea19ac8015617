//! The command line: `confgate serve`, `check-config`, `user`, `conference`,
//! `admin token` and `bot`.
//!
//! Management commands open the directory directly, so they work whether the
//! daemon runs or not; the daemon reads the directory on every decision, so
//! their changes reach it at once.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::directory::{
    AccountPatch, AccountType, Conference, ConferencePatch, ConferenceSpec, Directory, DirectoryError, NewAccount,
};

/// confgate: one conferencing gateway for SIP, H.323, browsers and local bots.
#[derive(Debug, Parser)]
#[command(name = "confgate", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML). Without it: embedded defaults and CONFGATE_* variables.
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve,
    /// Validate the configuration and print the effective one.
    CheckConfig,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage conferences.
    #[command(subcommand)]
    Conference(ConferenceCmd),
    /// Administration.
    #[command(subcommand)]
    Admin(AdminCmd),
    /// Join a conference as a local bot: play a tone or a WAV file, record what it hears.
    Bot(crate::bot::BotArgs),
}

/// `confgate user ...`
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Add an account.
    Add {
        /// User name (or full id user@server on this server).
        user: String,
        /// Account type: ws, sip, h323 or loop.
        #[arg(long = "type", default_value = "ws")]
        account_type: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List accounts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one account.
    Show {
        /// User name or full id.
        user: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change an account's type or display name.
    Update {
        /// User name or full id.
        user: String,
        /// New type.
        #[arg(long = "type")]
        account_type: Option<String>,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove an account.
    Remove {
        /// User name or full id.
        user: String,
    },
    /// Set an account's password (read from standard input).
    Passwd {
        /// User name or full id.
        user: String,
        /// Read the password from standard input (the only way; kept for scripts' clarity).
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Conference settings shared by `add` and `update`.
#[derive(Debug, Args)]
pub struct ConferenceFlags {
    /// Name shown to participants.
    #[arg(long)]
    pub name: Option<String>,
    /// PIN: 1-15 digits, not starting with 0.
    #[arg(long)]
    pub pin: Option<String>,
    /// Owner (user or full id).
    #[arg(long)]
    pub owner: Option<String>,
    /// Closed: only listed participants, the PIN or the lobby get in.
    #[arg(long)]
    pub closed: bool,
    /// No anonymous guests.
    #[arg(long)]
    pub no_anonymous: bool,
    /// Unlisted callers wait in the lobby.
    #[arg(long)]
    pub lobby: bool,
    /// No chat: participants cannot send text messages (chat is on by default).
    #[arg(long)]
    pub no_chat: bool,
    /// Maximum participants.
    #[arg(long)]
    pub max: Option<u32>,
    /// Runs always (the default for new conferences).
    #[arg(long, conflicts_with = "temporary")]
    pub permanent: bool,
    /// Runs while someone is in it and is removed when it stops.
    #[arg(long)]
    pub temporary: bool,
    /// A moderator (repeatable; on update, replaces the list).
    #[arg(long = "moderator", value_name = "USER")]
    pub moderators: Vec<String>,
    /// A participant (repeatable; on update, replaces the list).
    #[arg(long = "participant", value_name = "USER")]
    pub participants: Vec<String>,
}

/// `confgate conference ...`
#[derive(Debug, Subcommand)]
pub enum ConferenceCmd {
    /// Add a conference.
    Add {
        /// Conference id: 1-128 Latin letters, digits or '_'.
        id: String,
        /// Settings.
        #[command(flatten)]
        flags: ConferenceFlags,
    },
    /// List conferences.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one conference.
    Show {
        /// Conference id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a conference; only the flags given change.
    Update {
        /// Conference id.
        id: String,
        /// Settings to set.
        #[command(flatten)]
        flags: ConferenceFlags,
        /// Remove the PIN.
        #[arg(long, conflicts_with = "pin")]
        no_pin: bool,
        /// Make it open.
        #[arg(long, conflicts_with = "closed")]
        open: bool,
        /// Allow anonymous guests.
        #[arg(long, conflicts_with = "no_anonymous")]
        anonymous: bool,
        /// Turn the lobby off.
        #[arg(long, conflicts_with = "lobby")]
        no_lobby: bool,
        /// Turn chat on.
        #[arg(long, conflicts_with = "no_chat")]
        chat: bool,
        /// Remove the owner.
        #[arg(long, conflicts_with = "owner")]
        no_owner: bool,
    },
    /// Remove a conference.
    Remove {
        /// Conference id.
        id: String,
    },
}

/// `confgate admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Print the admin REST API token (created on first use).
    Token {
        /// Replace it with a new one; the old one stops working at once.
        #[arg(long)]
        rotate: bool,
    },
}

/// Loads the configuration or says what is wrong (exit code 2).
pub fn load_config(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("confgate: {e}");
        ExitCode::from(2)
    })
}

fn read_password() -> Result<String, String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| format!("reading the password from standard input: {e}"))?;
    let line = s.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err("password: standard input gave an empty password".into());
    }
    Ok(line)
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn show_conference(c: &Conference) {
    println!("id:               {}", c.id);
    println!("name:             {}", c.name);
    println!("owner:            {}", c.owner.as_deref().unwrap_or("-"));
    println!("access:           {}", if c.closed { "closed" } else { "open" });
    println!(
        "anonymous:        {}",
        if c.allow_anonymous { "allowed" } else { "not allowed" }
    );
    println!("pin:              {}", if c.pin.is_some() { "set" } else { "none" });
    println!("lobby:            {}", if c.lobby { "on" } else { "off" });
    println!("chat:             {}", if c.chat { "on" } else { "off" });
    println!("max participants: {}", c.max_participants);
    println!("permanent:        {}", if c.permanent { "yes" } else { "no" });
    println!(
        "moderators:       {}",
        if c.moderators.is_empty() {
            "-".into()
        } else {
            c.moderators.join(", ")
        }
    );
    println!(
        "participants:     {}",
        if c.participants.is_empty() {
            "-".into()
        } else {
            c.participants.join(", ")
        }
    );
}

/// Runs a management command against the directory.
pub async fn manage(config: &Config, command: Command) -> Result<(), String> {
    let dir = Directory::open(&config.server.data_dir, &config.server.name)
        .await
        .map_err(|e| e.to_string())?;
    let r = run_manage(&dir, command).await.map_err(|e| e.to_string());
    dir.close().await;
    r
}

async fn run_manage(dir: &Directory, command: Command) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::User(cmd) => match cmd {
            UserCmd::Add {
                user,
                account_type,
                name,
                password_stdin,
            } => {
                let password = if password_stdin { Some(read_password()?) } else { None };
                let a = dir
                    .add_account(NewAccount {
                        user,
                        account_type: account_type.parse()?,
                        display_name: name.unwrap_or_default(),
                        password,
                    })
                    .await?;
                println!("added {} ({}, \"{}\")", a.id, a.account_type, a.display_name);
            }
            UserCmd::List { json } => {
                let list = dir.list_accounts().await?;
                if json {
                    print_json(&list);
                } else {
                    for a in list {
                        println!("{:<40} {:<5} {}", a.id, a.account_type, a.display_name);
                    }
                }
            }
            UserCmd::Show { user, json } => {
                let a = dir.get_account(&user).await?;
                if json {
                    print_json(&a);
                } else {
                    println!(
                        "id:       {}\ntype:     {}\nname:     {}\npassword: {}",
                        a.id,
                        a.account_type,
                        a.display_name,
                        if a.has_password { "set" } else { "none" }
                    );
                }
            }
            UserCmd::Update {
                user,
                account_type,
                name,
            } => {
                let account_type = account_type.map(|t| t.parse::<AccountType>()).transpose()?;
                let a = dir
                    .update_account(
                        &user,
                        AccountPatch {
                            account_type,
                            display_name: name,
                            password: None,
                        },
                    )
                    .await?;
                println!("updated {}", a.id);
            }
            UserCmd::Remove { user } => {
                dir.remove_account(&user).await?;
                println!("removed {user}");
            }
            UserCmd::Passwd {
                user,
                password_stdin: _,
            } => {
                let pw = read_password()?;
                let a = dir
                    .update_account(
                        &user,
                        AccountPatch {
                            password: Some(pw),
                            ..Default::default()
                        },
                    )
                    .await?;
                println!("password changed for {}", a.id);
            }
        },
        Command::Conference(cmd) => match cmd {
            ConferenceCmd::Add { id, flags } => {
                let mut spec = ConferenceSpec::new(&id);
                spec.name = flags.name.unwrap_or_default();
                spec.pin = flags.pin;
                spec.owner = flags.owner;
                spec.closed = flags.closed;
                spec.allow_anonymous = !flags.no_anonymous;
                spec.lobby = flags.lobby;
                spec.chat = !flags.no_chat;
                spec.permanent = !flags.temporary;
                if let Some(m) = flags.max {
                    spec.max_participants = m;
                }
                spec.moderators = flags.moderators;
                spec.participants = flags.participants;
                let c = dir.add_conference(spec).await?;
                println!("added conference {}", c.id);
            }
            ConferenceCmd::List { json } => {
                let list = dir.list_conferences().await?;
                if json {
                    print_json(&list);
                } else {
                    for c in list {
                        println!(
                            "{:<24} {:<6} pin:{:<4} lobby:{:<3} max:{:<5} {}",
                            c.id,
                            if c.closed { "closed" } else { "open" },
                            if c.pin.is_some() { "set" } else { "none" },
                            if c.lobby { "on" } else { "off" },
                            c.max_participants,
                            c.name
                        );
                    }
                }
            }
            ConferenceCmd::Show { id, json } => {
                let c = dir.get_conference(&id).await?;
                if json {
                    print_json(&c);
                } else {
                    show_conference(&c);
                }
            }
            ConferenceCmd::Update {
                id,
                flags,
                no_pin,
                open,
                anonymous,
                no_lobby,
                chat,
                no_owner,
            } => {
                let pick = |on: bool, off: bool| {
                    if on {
                        Some(true)
                    } else if off {
                        Some(false)
                    } else {
                        None
                    }
                };
                let patch = ConferencePatch {
                    name: flags.name,
                    owner: if no_owner { Some(None) } else { flags.owner.map(Some) },
                    closed: pick(flags.closed, open),
                    allow_anonymous: pick(anonymous, flags.no_anonymous),
                    pin: if no_pin { Some(None) } else { flags.pin.map(Some) },
                    lobby: pick(flags.lobby, no_lobby),
                    chat: pick(chat, flags.no_chat),
                    max_participants: flags.max,
                    permanent: pick(flags.permanent, flags.temporary),
                    moderators: (!flags.moderators.is_empty()).then_some(flags.moderators),
                    participants: (!flags.participants.is_empty()).then_some(flags.participants),
                };
                let c = dir.update_conference(&id, patch).await?;
                println!("updated conference {}", c.id);
            }
            ConferenceCmd::Remove { id } => {
                dir.remove_conference(&id).await?;
                println!("removed conference {id}");
            }
        },
        Command::Admin(AdminCmd::Token { rotate }) => {
            let token = if rotate {
                dir.rotate_admin_token().await?
            } else {
                dir.admin_token().await?.0
            };
            println!("{token}");
        }
        Command::Serve | Command::CheckConfig | Command::Bot(_) => {
            return Err(Box::new(DirectoryError::Invalid {
                field: "command",
                message: "not a management command".into(),
            }));
        }
    }
    Ok(())
}
