//! Three bots in one conference playing 440, 660 and 880 Hz: each one's
//! recording holds the other two tones and not its own (N−1 mixing).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use confgate_suite::{read_wav, tone_power, Daemon};

#[test]
fn each_hears_the_others_not_itself() {
    let d = Daemon::start("three-bots").unwrap();
    d.cli_ok(&["conference", "add", "trio"]).unwrap();
    let tones = [440.0, 660.0, 880.0];
    let mut bots = Vec::new();
    for (i, hz) in tones.iter().enumerate() {
        let rec = d.dir.path().join(format!("bot{i}.wav"));
        let play = format!("tone:{hz}");
        let name = format!("Bot{i}");
        let args = [
            "--conference",
            "trio",
            "--name",
            &name,
            "--play",
            &play,
            "--record",
            rec.to_str().unwrap(),
            "--duration",
            "6",
        ];
        bots.push((d.bot(&args).unwrap(), rec));
    }
    let mut recs = Vec::new();
    for (b, rec) in bots {
        let (st, _, err) = b.output_timeout(Duration::from_secs(30)).unwrap();
        assert!(st.success(), "{err}");
        recs.push(rec);
    }
    for (i, rec) in recs.iter().enumerate() {
        let (rate, s) = read_wav(rec).unwrap();
        assert!(s.len() > 48_000 * 3, "bot {i} recorded {} samples", s.len());
        let tail = &s[48_000..];
        let p: Vec<f64> = tones.iter().map(|f| tone_power(tail, rate, *f)).collect();
        let own = p[i];
        for (j, pj) in p.iter().enumerate() {
            if j != i {
                assert!(
                    *pj > own * 100.0,
                    "bot {i}: tone {} ({pj:.1}) not clearly above its own ({own:.1}): {p:?}",
                    tones[j]
                );
            }
        }
        assert!(
            own < p.iter().cloned().fold(0.0, f64::max) / 1000.0,
            "bot {i} hears itself: {p:?}"
        );
    }
}
