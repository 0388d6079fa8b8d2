//! Turning the screen itself off and on at the `[display] on` boundaries: HDMI-CEC for TVs,
//! DDC/CI for monitors, tried in that order (`[display] power_via`). The black page is not one
//! of the means here but always applied by the player as well, so a TV that ignores the
//! command, or a screen with no means at all, still shows black and the web view idles.
//!
//! Which means works is found out again at every switch, not once at start: TVs are unplugged,
//! replaced and switched at the wall, and a kiosk runs for months.

pub(crate) mod cec;
mod cec_linux;
pub(crate) mod ddc;
mod ddc_linux;
mod switch;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) use switch::ScreenSwitch;

use crate::schedule::Power;

/// `[display] power_via`: which means to try.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum PowerVia {
    /// HDMI-CEC, then DDC/CI.
    #[default]
    Auto,
    Cec,
    Ddc,
    /// The black page only.
    Black,
}

impl PowerVia {
    pub(crate) const ALL: [Self; 4] = [Self::Auto, Self::Cec, Self::Ddc, Self::Black];

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == text)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cec => "cec",
            Self::Ddc => "ddc",
            Self::Black => "black",
        }
    }

    fn tries_cec(self) -> bool {
        matches!(self, Self::Auto | Self::Cec)
    }

    fn tries_ddc(self) -> bool {
        matches!(self, Self::Auto | Self::Ddc)
    }
}

/// The means that did it (`display.via` on `/status`, the `via` label of
/// `pbikiosk_display_on`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// The TV acknowledged the CEC message.
    Cec,
    /// A monitor acknowledged the DDC/CI command.
    Ddc,
    /// Nothing did: the picture is black, the screen stays lit.
    Black,
}

impl Via {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Cec => "cec",
            Self::Ddc => "ddc",
            Self::Black => "black",
        }
    }
}

/// What the screen itself is to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Light {
    On,
    Off,
}

impl Light {
    /// A screen that is waking is turned on already: a TV takes seconds to come up, and the
    /// report is being prepared behind the black page meanwhile.
    pub(crate) fn of(power: Power) -> Self {
        match power {
            Power::Off => Self::Off,
            Power::On | Power::Waking => Self::On,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::On => "on",
            Self::Off => "off",
        }
    }
}

/// `[display] power_via` and `cec_device`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) via: PowerVia,
    /// The adapter to use; the first `/dev/cec*` when not set.
    pub(crate) cec_device: Option<PathBuf>,
}

/// How one switch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) via: Via,
    /// What happened, for the log and `/status` (`display.detail`).
    pub(crate) detail: String,
    /// A device was there but did not do it: worth another try later. A machine with no means
    /// at all is not a failure; it is found out again at the next switch.
    pub(crate) failed: bool,
}

/// The device boundary of the chooser: the real `/dev` and `/sys` in the product, doubles in
/// the tests.
pub(crate) trait Hardware {
    fn cec_devices(&self) -> Vec<PathBuf>;
    fn open_cec(&self, path: &Path) -> io::Result<Box<dyn cec::CecDevice>>;
    fn ddc_buses(&self) -> Vec<ddc::Bus>;
    fn open_ddc(&self, bus: &ddc::Bus) -> io::Result<Box<dyn ddc::DdcDevice>>;
    fn sleep(&self, pause: Duration);
}

/// This machine.
pub(crate) struct System;

impl Hardware for System {
    fn cec_devices(&self) -> Vec<PathBuf> {
        cec_linux::devices(Path::new("/dev"))
    }

    fn open_cec(&self, path: &Path) -> io::Result<Box<dyn cec::CecDevice>> {
        Ok(Box::new(cec_linux::LinuxCec::open(path)?))
    }

    fn ddc_buses(&self) -> Vec<ddc::Bus> {
        ddc_linux::buses(Path::new("/sys/class/drm"), Path::new("/dev"))
    }

    fn open_ddc(&self, bus: &ddc::Bus) -> io::Result<Box<dyn ddc::DdcDevice>> {
        Ok(Box::new(ddc_linux::LinuxI2c::open(&bus.device)?))
    }

    fn sleep(&self, pause: Duration) {
        std::thread::sleep(pause);
    }
}

/// Why a device could not be opened, with what to do about it.
fn open_failure(path: &Path, e: &io::Error, group: &str) -> String {
    match e.kind() {
        io::ErrorKind::PermissionDenied => format!(
            "{}: permission denied: the kiosk's user must be in group {group} (the package adds it; log in again or restart the service after adding it by hand)",
            path.display()
        ),
        io::ErrorKind::NotFound if group == "i2c" => format!(
            "{}: no such device: load the i2c-dev module (echo i2c-dev > /etc/modules-load.d/i2c-dev.conf)",
            path.display()
        ),
        io::ErrorKind::NotFound => format!("{}: no such device", path.display()),
        _ => format!("{}: cannot open: {e}", path.display()),
    }
}

/// The CEC adapter to use: the configured one, else the first there is.
fn cec_device(settings: &Settings, hw: &dyn Hardware) -> Option<PathBuf> {
    settings
        .cec_device
        .clone()
        .or_else(|| hw.cec_devices().into_iter().next())
}

/// HDMI-CEC: `Ok` with what the TV acknowledged, `Err` with why not; `None` when there is no
/// adapter at all.
fn by_cec(light: Light, settings: &Settings, hw: &dyn Hardware) -> Option<Result<String, String>> {
    let path = cec_device(settings, hw)?;
    let name = path.display().to_string();
    let mut dev = match hw.open_cec(&path) {
        Ok(d) => d,
        Err(e) => return Some(Err(open_failure(&path, &e, "video"))),
    };
    let mut sleep = |d| hw.sleep(d);
    let result = match light {
        Light::Off => cec::turn_off(dev.as_mut(), &name, &mut sleep),
        Light::On => cec::turn_on(dev.as_mut(), &name, &mut sleep),
    };
    Some(match result {
        Ok(done) => Ok(match (light, done.active_source) {
            (Light::Off, _) => format!(
                "HDMI-CEC {name}: the TV acknowledged <Standby> (from logical address {})",
                done.from
            ),
            (Light::On, Some(false)) => format!(
                "HDMI-CEC {name}: the TV acknowledged <Image View On>; <Active Source> was not sent, so it may show its last input"
            ),
            (Light::On, _) => format!(
                "HDMI-CEC {name}: the TV acknowledged <Image View On>, <Active Source> sent"
            ),
        }),
        Err(e) => Err(e.to_string()),
    })
}

/// DDC/CI to every connected monitor that has a DDC bus: `Ok` when at least one acknowledged.
fn by_ddc(light: Light, hw: &dyn Hardware) -> Option<Result<String, String>> {
    let buses = hw.ddc_buses();
    if buses.is_empty() {
        return None;
    }
    let mode = match light {
        Light::On => ddc::PowerMode::On,
        Light::Off => ddc::PowerMode::Off,
    };
    let (mut acked, mut failed) = (Vec::new(), Vec::new());
    for bus in &buses {
        let result = hw
            .open_ddc(bus)
            .map_err(|e| open_failure(&bus.device, &e, "i2c"))
            .and_then(|mut dev| {
                ddc::set_power(dev.as_mut(), mode, &mut |d| hw.sleep(d))
                    .map_err(|e| format!("{}: {e}", bus.describe()))
            });
        match result {
            Ok(()) => acked.push(bus.describe()),
            Err(e) => failed.push(e),
        }
    }
    Some(if acked.is_empty() {
        Err(failed.join("; "))
    } else {
        Ok(format!(
            "DDC/CI: {} acknowledged power mode {}",
            acked.join(", "),
            mode.value()
        ))
    })
}

/// Switch the screen by the first means that works, in the order `power_via` allows.
pub(crate) fn switch(light: Light, settings: &Settings, hw: &dyn Hardware) -> Outcome {
    let mut why_not: Vec<String> = Vec::new();
    let mut failed = false;
    if settings.via.tries_cec() {
        match by_cec(light, settings, hw) {
            Some(Ok(detail)) => {
                return Outcome {
                    via: Via::Cec,
                    detail,
                    failed: false,
                };
            }
            Some(Err(e)) => {
                failed = true;
                why_not.push(e);
            }
            None => why_not.push("no HDMI-CEC device (/dev/cec*)".into()),
        }
    }
    if settings.via.tries_ddc() {
        match by_ddc(light, hw) {
            Some(Ok(detail)) => {
                return Outcome {
                    via: Via::Ddc,
                    detail,
                    failed: false,
                };
            }
            Some(Err(e)) => {
                failed = true;
                why_not.push(e);
            }
            None => why_not.push("no DDC/CI bus on a connected output".into()),
        }
    }
    let detail = match light {
        Light::Off => "black page only, the screen stays lit",
        Light::On => "the screen itself was not switched",
    };
    Outcome {
        via: Via::Black,
        detail: format!("{detail}: {}", why_not.join("; ")),
        failed,
    }
}

/// `pbikiosk check`'s line: which means this screen has, found without switching anything.
/// `Ok` a means that answered, `Err` (message, fix) none.
pub(crate) fn check(settings: &Settings, hw: &dyn Hardware) -> Result<String, (String, String)> {
    if settings.via == PowerVia::Black {
        return Ok("[display] power_via = \"black\": off hours show a black page".into());
    }
    let mut why_not: Vec<String> = Vec::new();
    if settings.via.tries_cec() {
        match cec_device(settings, hw) {
            None => why_not.push("no CEC device".into()),
            Some(path) => {
                let name = path.display().to_string();
                let polled = hw
                    .open_cec(&path)
                    .map_err(|e| open_failure(&path, &e, "video"))
                    .and_then(|mut d| cec::poll_tv(d.as_mut(), &name).map_err(|e| e.to_string()));
                match polled {
                    Ok(phys) => {
                        let phys = phys.map_or_else(
                            || "none: the TV drops the hot-plug line in standby".into(),
                            cec::show_phys,
                        );
                        return Ok(format!(
                            "HDMI-CEC {name}, TV at logical address 0 acknowledged (our physical address {phys})"
                        ));
                    }
                    Err(e) => why_not.push(e),
                }
            }
        }
    }
    if settings.via.tries_ddc() {
        let buses = hw.ddc_buses();
        if buses.is_empty() {
            why_not.push("no DDC/CI bus on a connected output".into());
        }
        for bus in buses {
            let read = hw
                .open_ddc(&bus)
                .map_err(|e| open_failure(&bus.device, &e, "i2c"))
                .and_then(|mut d| {
                    ddc::get_power(d.as_mut(), &mut |p| hw.sleep(p))
                        .map_err(|e| format!("{}: {e}", bus.describe()))
                });
            match read {
                Ok(mode) => {
                    return Ok(format!(
                        "DDC/CI {}, the monitor answered (power mode {mode})",
                        bus.describe()
                    ));
                }
                Err(e) => why_not.push(e),
            }
        }
    }
    Err((
        format!(
            "{}: the screen is blacked out but stays lit out of hours",
            why_not.join("; ")
        ),
        "For a TV: switch HDMI-CEC on in its menu (Anynet+, Bravia Sync, SimpLink, ...) and, on a Raspberry Pi, use the vc4-kms-v3d overlay (it gives /dev/cec0). For a monitor: switch DDC/CI on in its menu and load i2c-dev. Or set [display] power_via = \"black\" to say the black page is enough.".into(),
    ))
}

/// `/status` `display`: the means the last switch off used, once the black page is up, and what
/// the last switch said.
pub(crate) fn overlay(display: &mut crate::player::DisplayStatus, last: Option<switch::Applied>) {
    let Some(last) = last else { return };
    if display.via.is_some() && last.light == Light::Off {
        display.via = Some(last.outcome.via.as_str());
    }
    display.detail = Some(format!("{}: {}", last.light.as_str(), last.outcome.detail));
}

#[cfg(test)]
mod tests {
    use super::cec::tests::Bus;
    use super::cec::{PHYS_ADDR_INVALID, TxStatus};
    use super::ddc::tests::Monitor;
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::rc::Rc;

    /// A machine with some CEC adapters and DDC buses; each device is shared with the switch
    /// that opens it, so what it was sent can be looked at afterwards.
    #[derive(Default)]
    pub(crate) struct Machine {
        pub(crate) cec: HashMap<PathBuf, Rc<RefCell<Bus>>>,
        pub(crate) denied: Vec<PathBuf>,
        pub(crate) monitors: Vec<(ddc::Bus, Rc<RefCell<Monitor>>)>,
    }

    impl Machine {
        pub(crate) fn tv(answers: &[TxStatus]) -> Self {
            let mut m = Self::default();
            m.add_cec("/dev/cec0", Bus::with_tv(answers));
            m
        }

        fn add_cec(&mut self, path: &str, bus: Bus) {
            self.cec.insert(path.into(), Rc::new(RefCell::new(bus)));
        }

        pub(crate) fn monitor(mut self, acks: Vec<bool>) -> Self {
            self.monitors.push((
                ddc::Bus {
                    connector: "card0-DP-1".into(),
                    device: "/dev/i2c-5".into(),
                },
                Rc::new(RefCell::new(Monitor {
                    acks,
                    ..Monitor::default()
                })),
            ));
            self
        }

        fn bus(&self, path: &str) -> std::cell::RefMut<'_, Bus> {
            self.cec[Path::new(path)].borrow_mut()
        }

        fn sent(&self) -> Vec<Vec<u8>> {
            self.bus("/dev/cec0").sent.clone()
        }
    }

    impl Hardware for Machine {
        fn cec_devices(&self) -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = self.cec.keys().cloned().collect();
            v.sort();
            v
        }
        fn open_cec(&self, path: &Path) -> io::Result<Box<dyn cec::CecDevice>> {
            if self.denied.iter().any(|d| d == path) {
                return Err(io::Error::from(io::ErrorKind::PermissionDenied));
            }
            let bus = self
                .cec
                .get(path)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            Ok(Box::new(bus.clone()))
        }
        fn ddc_buses(&self) -> Vec<ddc::Bus> {
            self.monitors.iter().map(|(b, _)| b.clone()).collect()
        }
        fn open_ddc(&self, bus: &ddc::Bus) -> io::Result<Box<dyn ddc::DdcDevice>> {
            let (_, m) = self
                .monitors
                .iter()
                .find(|(b, _)| b == bus)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            Ok(Box::new(m.clone()))
        }
        fn sleep(&self, _: Duration) {}
    }

    fn auto() -> Settings {
        Settings::default()
    }

    #[test]
    fn a_tv_that_acknowledges_is_switched_by_cec() {
        let m = Machine::tv(&[TxStatus::ACK]);
        let out = switch(Light::Off, &auto(), &m);
        assert_eq!(out.via, Via::Cec, "{out:?}");
        assert!(out.detail.contains("/dev/cec0") && out.detail.contains("<Standby>"));
        assert_eq!(m.sent(), vec![vec![0x40, 0x36]]);
        let out = switch(Light::On, &auto(), &m);
        assert_eq!(out.via, Via::Cec, "{out:?}");
        assert_eq!(m.sent().len(), 3);
    }

    #[test]
    fn no_device_at_all_is_the_black_page_and_not_a_failure() {
        let out = switch(Light::Off, &auto(), &Machine::default());
        assert_eq!(out.via, Via::Black);
        assert!(!out.failed);
        assert_eq!(
            out.detail,
            "black page only, the screen stays lit: no HDMI-CEC device (/dev/cec*); no DDC/CI bus on a connected output"
        );
    }

    #[test]
    fn a_tv_that_nacks_falls_through_to_ddc_then_black() {
        let m = Machine::tv(&[TxStatus::NACK]);
        let out = switch(Light::Off, &auto(), &m);
        assert_eq!(out.via, Via::Black);
        assert!(
            out.failed,
            "a TV that is there but does not answer is tried again later"
        );
        assert!(
            out.detail.contains("did not acknowledge <Standby>"),
            "{}",
            out.detail
        );

        let m = Machine::tv(&[TxStatus::NACK]).monitor(vec![true]);
        let out = switch(Light::Off, &auto(), &m);
        assert_eq!(out.via, Via::Ddc, "{out:?}");
        assert!(out.detail.contains("card0-DP-1"), "{}", out.detail);
    }

    #[test]
    fn power_via_limits_the_means_tried() {
        let m = Machine::tv(&[TxStatus::ACK]).monitor(vec![true]);
        let ddc_only = Settings {
            via: PowerVia::Ddc,
            ..auto()
        };
        assert_eq!(switch(Light::Off, &ddc_only, &m).via, Via::Ddc);
        assert!(m.sent().is_empty(), "CEC not touched");
        let cec_only = Settings {
            via: PowerVia::Cec,
            ..auto()
        };
        let m = Machine::tv(&[TxStatus::NACK]).monitor(vec![true]);
        assert_eq!(switch(Light::Off, &cec_only, &m).via, Via::Black);
        let black = Settings {
            via: PowerVia::Black,
            ..auto()
        };
        let m = Machine::tv(&[TxStatus::ACK]);
        let out = switch(Light::Off, &black, &m);
        assert_eq!(out.via, Via::Black);
        assert!(m.sent().is_empty());
    }

    #[test]
    fn the_configured_adapter_is_used_and_a_missing_one_is_named() {
        let mut m = Machine::tv(&[TxStatus::ACK]);
        m.add_cec("/dev/cec1", Bus::with_tv(&[TxStatus::ACK]));
        let settings = Settings {
            via: PowerVia::Cec,
            cec_device: Some("/dev/cec1".into()),
        };
        assert_eq!(switch(Light::Off, &settings, &m).via, Via::Cec);
        assert!(m.sent().is_empty(), "cec0 untouched");
        let settings = Settings {
            via: PowerVia::Cec,
            cec_device: Some("/dev/cec7".into()),
        };
        let out = switch(Light::Off, &settings, &m);
        assert_eq!(out.via, Via::Black);
        assert!(
            out.detail.contains("/dev/cec7: no such device"),
            "{}",
            out.detail
        );
    }

    #[test]
    fn a_device_the_user_may_not_open_says_which_group() {
        let mut m = Machine::tv(&[TxStatus::ACK]);
        m.denied.push("/dev/cec0".into());
        let out = switch(Light::Off, &auto(), &m);
        assert!(out.detail.contains("group video"), "{}", out.detail);
    }

    #[test]
    fn hot_plug_low_is_said_as_such() {
        let m = Machine::tv(&[TxStatus::NACK]);
        m.bus("/dev/cec0").phys = PHYS_ADDR_INVALID;
        let out = switch(Light::On, &auto(), &m);
        assert_eq!(out.via, Via::Black);
        assert!(out.failed);
        assert!(
            out.detail.contains("no HDMI physical address"),
            "{}",
            out.detail
        );
        // A TV in standby that dropped the line but still listens is woken all the same.
        let m = Machine::tv(&[TxStatus::ACK]);
        m.bus("/dev/cec0").phys = PHYS_ADDR_INVALID;
        let out = switch(Light::On, &auto(), &m);
        assert_eq!(out.via, Via::Cec);
        assert!(
            out.detail.contains("may show its last input"),
            "{}",
            out.detail
        );
    }

    #[test]
    fn the_check_names_what_it_found_without_switching() {
        let m = Machine::tv(&[TxStatus::ACK]);
        let line = check(&auto(), &m).unwrap();
        assert_eq!(
            line,
            "HDMI-CEC /dev/cec0, TV at logical address 0 acknowledged (our physical address 1.0.0.0)"
        );
        assert_eq!(m.sent(), vec![vec![0xf0]], "a poll only");
        let (message, fix) = check(&auto(), &Machine::default()).unwrap_err();
        assert!(
            message.starts_with("no CEC device; no DDC/CI bus")
                && message.ends_with("blacked out but stays lit out of hours"),
            "{message}"
        );
        assert!(fix.contains("vc4-kms-v3d"), "{fix}");
        let black = Settings {
            via: PowerVia::Black,
            ..auto()
        };
        assert!(check(&black, &Machine::default()).is_ok());
    }

    #[test]
    fn status_says_the_means_only_for_an_acknowledged_off() {
        use crate::player::DisplayStatus;
        let off_black = || DisplayStatus {
            power: "off",
            via: Some("black"),
            detail: None,
        };
        let applied = |light, via, failed| switch::Applied {
            light,
            outcome: Outcome {
                via,
                detail: "what happened".into(),
                failed,
            },
        };
        let mut d = off_black();
        overlay(&mut d, None);
        assert_eq!(d, off_black(), "nothing switched yet");
        overlay(&mut d, Some(applied(Light::Off, Via::Cec, false)));
        assert_eq!(d.via, Some("cec"));
        assert_eq!(d.detail.as_deref(), Some("off: what happened"));
        let mut d = off_black();
        overlay(&mut d, Some(applied(Light::Off, Via::Black, true)));
        assert_eq!(d.via, Some("black"), "the TV did not take it");
        // Waking: the TV is on already, the page still black.
        let mut d = off_black();
        overlay(&mut d, Some(applied(Light::On, Via::Cec, false)));
        assert_eq!(d.via, Some("black"));
        // Lit: no means.
        let mut d = DisplayStatus {
            power: "on",
            via: None,
            detail: None,
        };
        overlay(&mut d, Some(applied(Light::On, Via::Cec, false)));
        assert_eq!(d.via, None);
        assert_eq!(d.detail.as_deref(), Some("on: what happened"));
    }

    #[test]
    fn power_via_words() {
        for v in PowerVia::ALL {
            assert_eq!(PowerVia::parse(v.as_str()), Some(v));
        }
        assert_eq!(PowerVia::parse("hdmi"), None);
    }
}
