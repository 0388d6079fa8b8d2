//! HDMI-CEC: which messages turn a TV off and on, in which order, and what the TV's
//! acknowledgements mean. Everything here talks to a [`CecDevice`], the kernel's CEC framework
//! (`/dev/cecN`) in the product and a recording double in the tests, so the logic is the same
//! in both and the ioctls stay in `cec_linux.rs`.

use std::io;
use std::time::Duration;

use thiserror::Error;

/// The TV's logical address: always 0 on a CEC bus.
pub(crate) const TV: u8 = 0;
/// The destination of a broadcast, and the address of a device that has none.
pub(crate) const BROADCAST: u8 = 0xf;
/// No physical address: the HDMI hot-plug line is low (TV unplugged or off at the wall).
pub(crate) const PHYS_ADDR_INVALID: u16 = 0xffff;

const STANDBY: u8 = 0x36;
const IMAGE_VIEW_ON: u8 = 0x04;
const ACTIVE_SOURCE: u8 = 0x82;

/// `tx_status` bits of `struct cec_msg` (linux/cec.h).
const TX_OK: u8 = 1 << 0;
const TX_NACK: u8 = 1 << 2;

/// Pauses between the tries of one message. The kernel already retransmits a frame as the CEC
/// specification says; these cover a TV that is busy changing state (a NACK while it wakes)
/// or a bus that is briefly in use, without ever keeping the bus busy: three tries in about
/// 2.5 s, then the message has failed and the caller waits minutes before trying again.
const TRY_PAUSES: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(2)];
/// How long a waking TV has to give the adapter its addresses back: 10 looks, 1 s apart.
const WAKE_POLLS: usize = 10;
const WAKE_POLL: Duration = Duration::from_secs(1);

/// The adapter's logical addresses as `CEC_ADAP_G_LOG_ADDRS` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LogAddrs {
    /// How many addresses were asked for (0: the adapter is not configured by anyone).
    pub(crate) requested: u8,
    /// The addresses claimed, one bit each (bit 15: the unregistered address).
    pub(crate) mask: u16,
}

impl LogAddrs {
    /// The lowest claimed address, the one our messages come from.
    fn first(self) -> Option<u8> {
        (self.mask != 0).then(|| self.mask.trailing_zeros() as u8)
    }
}

/// What the kiosk claims when nobody configured the adapter: one playback device (what
/// `cec-ctl --playback` claims), falling back to the unregistered address when the bus has no
/// free playback address, which can still send `<Standby>` and `<Image View On>` to the TV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    /// The name a TV shows in its source list (at most 14 bytes).
    pub(crate) osd_name: &'static str,
}

pub(crate) const CLAIM: Claim = Claim {
    osd_name: "pbikiosk",
};

/// How a transmitted message went: the `tx_status` byte the kernel filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxStatus(pub(crate) u8);

impl TxStatus {
    /// What the kernel reports for an acknowledged message, and for one the TV never
    /// acknowledged (NACK after the kernel's own retransmissions).
    #[cfg(test)]
    pub(crate) const ACK: Self = Self(TX_OK);
    #[cfg(test)]
    pub(crate) const NACK: Self = Self(TX_NACK | 1 << 5);

    fn acknowledged(self) -> bool {
        self.0 & TX_OK != 0
    }

    fn nacked(self) -> bool {
        self.0 & TX_NACK != 0
    }
}

impl std::fmt::Display for TxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const NAMES: [&str; 8] = [
            "ok",
            "arbitration lost",
            "not acknowledged",
            "low drive",
            "error",
            "max retries",
            "aborted",
            "timeout",
        ];
        let names: Vec<&str> = (0..8)
            .filter(|b| self.0 & (1 << b) != 0)
            .map(|b| NAMES[b])
            .collect();
        if names.is_empty() {
            write!(f, "no status")
        } else {
            write!(f, "{}", names.join(", "))
        }
    }
}

/// The ioctl boundary: one open `/dev/cecN`.
pub(crate) trait CecDevice {
    /// `CEC_ADAP_G_PHYS_ADDR`.
    fn phys_addr(&mut self) -> io::Result<u16>;
    /// `CEC_ADAP_G_LOG_ADDRS`.
    fn log_addrs(&mut self) -> io::Result<LogAddrs>;
    /// `CEC_ADAP_S_LOG_ADDRS`: claims and waits until the kernel has claimed.
    fn set_log_addrs(&mut self, claim: &Claim) -> io::Result<LogAddrs>;
    /// `CEC_S_MODE` with `CEC_MODE_INITIATOR`: this file may send.
    fn set_initiator(&mut self) -> io::Result<()>;
    /// `CEC_TRANSMIT` (blocking): the message's bytes, header first.
    fn transmit(&mut self, msg: &[u8]) -> io::Result<TxStatus>;
}

/// Why the TV could not be switched over HDMI-CEC. Each says what an installer can do.
#[derive(Debug, Error)]
pub(crate) enum CecError {
    #[error(
        "{device}: no HDMI physical address and no answer from the TV: it is unplugged or off at the wall"
    )]
    NoPhysAddr { device: String },
    #[error(
        "{device}: busy: another program holds the CEC adapter (a CEC daemon, or cec-ctl with --monitor); stop it or set [display] power_via"
    )]
    Busy { device: String },
    #[error(
        "{device}: the adapter has no logical address: another program asked for one that the bus did not give (cec-ctl --clear resets it)"
    )]
    NotConfigured { device: String },
    #[error("{device}: not a CEC adapter this kernel can drive ({source})")]
    Unsupported { device: String, source: io::Error },
    #[error(
        "{device}: the TV did not acknowledge <{message}>: HDMI-CEC is switched off in the TV's menu (Anynet+, Bravia Sync, SimpLink, ...), or the TV is not on this HDMI port"
    )]
    Nack {
        device: String,
        message: &'static str,
    },
    #[error("{device}: <{message}> was not sent: {status}")]
    NotSent {
        device: String,
        message: &'static str,
        status: TxStatus,
    },
    #[error("{device}: {step}: {source}")]
    Io {
        device: String,
        step: &'static str,
        source: io::Error,
    },
}

/// The TV acknowledged the message that switches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Switched {
    /// Our logical address on the bus.
    pub(crate) from: u8,
    /// Only when turning on: whether the `<Active Source>` broadcast went out (a TV that
    /// missed it stays on its last input).
    pub(crate) active_source: Option<bool>,
}

fn io_error(device: &str, step: &'static str, source: io::Error) -> CecError {
    match source.raw_os_error() {
        Some(libc::EBUSY) => CecError::Busy {
            device: device.to_owned(),
        },
        Some(libc::ENONET) => CecError::NotConfigured {
            device: device.to_owned(),
        },
        Some(libc::ENOTTY) => CecError::Unsupported {
            device: device.to_owned(),
            source,
        },
        _ => CecError::Io {
            device: device.to_owned(),
            step,
            source,
        },
    }
}

/// Our physical address (the HDMI port's place in the TV's tree, e.g. 1.0.0.0), `None` while
/// the hot-plug line is low.
fn phys_addr(dev: &mut dyn CecDevice, device: &str) -> Result<Option<u16>, CecError> {
    let phys = dev
        .phys_addr()
        .map_err(|e| io_error(device, "reading the physical address", e))?;
    Ok((phys != PHYS_ADDR_INVALID).then_some(phys))
}

/// The logical address to send from: the one already claimed (by us at an earlier switch, or
/// by an administrator's `cec-ctl --playback`), else a playback address claimed now. An adapter
/// someone else asked addresses of but that has none is left alone: claiming over it would undo
/// their setup.
fn logical_address(dev: &mut dyn CecDevice, device: &str) -> Result<u8, CecError> {
    let now = dev
        .log_addrs()
        .map_err(|e| io_error(device, "reading the logical addresses", e))?;
    if let Some(la) = now.first() {
        return Ok(la);
    }
    if now.requested > 0 {
        return Err(CecError::NotConfigured {
            device: device.to_owned(),
        });
    }
    let claimed = dev
        .set_log_addrs(&CLAIM)
        .map_err(|e| io_error(device, "claiming a logical address", e))?;
    claimed.first().ok_or_else(|| CecError::NotConfigured {
        device: device.to_owned(),
    })
}

/// Ready to send: the right to initiate, and the address to send from. Many TVs drop the
/// hot-plug line in standby, which takes the adapter's physical and logical addresses away;
/// the kernel still lets an unconfigured adapter send from the unregistered address to the TV
/// (unless the adapter needs the hot-plug line for CEC at all), which is enough for
/// `<Image View On>`, and on most kernels for `<Standby>` too.
fn ready(dev: &mut dyn CecDevice, device: &str) -> Result<(Option<u16>, u8), CecError> {
    let phys = phys_addr(dev, device)?;
    dev.set_initiator()
        .map_err(|e| io_error(device, "becoming initiator", e))?;
    let la = match phys {
        Some(_) => logical_address(dev, device)?,
        None => BROADCAST,
    };
    Ok((phys, la))
}

/// A TV that did not answer while the hot-plug line is low is unplugged or off at the wall:
/// say that rather than blame its CEC setting.
fn without_phys(e: CecError, phys: Option<u16>, device: &str) -> CecError {
    match (e, phys) {
        (CecError::Nack { .. }, None) => CecError::NoPhysAddr {
            device: device.to_owned(),
        },
        (e, _) => e,
    }
}

/// After `<Image View On>` from the unregistered address: the TV raises the hot-plug line as it
/// wakes, and the kernel gives the adapter its addresses back. Waited for a few seconds at most.
fn wait_for_addresses(
    dev: &mut dyn CecDevice,
    device: &str,
    sleep: &mut dyn FnMut(Duration),
) -> Option<(u16, u8)> {
    for _ in 0..WAKE_POLLS {
        sleep(WAKE_POLL);
        let Ok(Some(phys)) = phys_addr(dev, device) else {
            continue;
        };
        if let Ok(la) = logical_address(dev, device) {
            return Some((phys, la));
        }
    }
    None
}

/// One message with its tries; `Ok` only when acknowledged.
fn send(
    dev: &mut dyn CecDevice,
    device: &str,
    message: &'static str,
    bytes: &[u8],
    sleep: &mut dyn FnMut(Duration),
) -> Result<(), CecError> {
    let mut pauses = TRY_PAUSES.iter();
    loop {
        let status = dev
            .transmit(bytes)
            .map_err(|e| io_error(device, "transmitting", e))?;
        if status.acknowledged() {
            return Ok(());
        }
        match pauses.next() {
            Some(pause) => sleep(*pause),
            None if status.nacked() => {
                return Err(CecError::Nack {
                    device: device.to_owned(),
                    message,
                });
            }
            None => {
                return Err(CecError::NotSent {
                    device: device.to_owned(),
                    message,
                    status,
                });
            }
        }
    }
}

fn header(from: u8, to: u8) -> u8 {
    (from << 4) | (to & 0xf)
}

/// `<Standby>` to the TV.
pub(crate) fn turn_off(
    dev: &mut dyn CecDevice,
    device: &str,
    sleep: &mut dyn FnMut(Duration),
) -> Result<Switched, CecError> {
    let (phys, la) = ready(dev, device)?;
    send(dev, device, "Standby", &[header(la, TV), STANDBY], sleep)
        .map_err(|e| without_phys(e, phys, device))?;
    Ok(Switched {
        from: la,
        active_source: None,
    })
}

/// `<Image View On>` to the TV (which wakes it), then `<Active Source>` with our physical
/// address to everyone, so the TV switches to our input. The TV's acknowledgement of the first
/// is what counts: a broadcast has no one receiver to acknowledge it.
pub(crate) fn turn_on(
    dev: &mut dyn CecDevice,
    device: &str,
    sleep: &mut dyn FnMut(Duration),
) -> Result<Switched, CecError> {
    let (phys, la) = ready(dev, device)?;
    send(
        dev,
        device,
        "Image View On",
        &[header(la, TV), IMAGE_VIEW_ON],
        sleep,
    )
    .map_err(|e| without_phys(e, phys, device))?;
    let addresses = match phys {
        Some(phys) => Some((phys, la)),
        None => wait_for_addresses(dev, device, sleep),
    };
    let Some((phys, from)) = addresses else {
        tracing::warn!(
            device,
            "HDMI-CEC: the TV woke but gave no physical address in time; it may stay on its last input"
        );
        return Ok(Switched {
            from: la,
            active_source: Some(false),
        });
    };
    let [hi, lo] = phys.to_be_bytes();
    let active = send(
        dev,
        device,
        "Active Source",
        &[header(from, BROADCAST), ACTIVE_SOURCE, hi, lo],
        sleep,
    );
    if let Err(e) = &active {
        tracing::warn!(error = %e, "HDMI-CEC: the TV woke but may stay on its last input");
    }
    Ok(Switched {
        from: la,
        active_source: Some(active.is_ok()),
    })
}

/// `pbikiosk check`: is a TV there and listening? A poll (a message with no opcode) from the
/// address already claimed, or from the unregistered address, which the kernel allows on an
/// adapter nobody configured: nothing is claimed and nothing on the screen changes.
pub(crate) fn poll_tv(dev: &mut dyn CecDevice, device: &str) -> Result<Option<u16>, CecError> {
    let phys = phys_addr(dev, device)?;
    dev.set_initiator()
        .map_err(|e| io_error(device, "becoming initiator", e))?;
    let la = dev
        .log_addrs()
        .map_err(|e| io_error(device, "reading the logical addresses", e))?
        .first()
        .unwrap_or(BROADCAST);
    send(dev, device, "Poll", &[header(la, TV)], &mut |_| {})
        .map_err(|e| without_phys(e, phys, device))?;
    Ok(phys)
}

/// A physical address as HDMI writes it: 1.0.0.0.
pub(crate) fn show_phys(phys: u16) -> String {
    let n = |shift: u16| (phys >> shift) & 0xf;
    format!("{:x}.{:x}.{:x}.{:x}", n(12), n(8), n(4), n(0))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A CEC adapter on a bus with a TV, as the kernel would answer.
    #[derive(Debug, Default)]
    pub(crate) struct Bus {
        pub(crate) phys: u16,
        pub(crate) las: LogAddrs,
        /// What claiming gives (the kernel's claim of a free playback address: 4).
        pub(crate) claim_gives: u16,
        /// The TV's answers, in order; when they run out, the last one repeats.
        pub(crate) answers: Vec<TxStatus>,
        pub(crate) busy: bool,
        /// The physical address a TV that dropped the hot-plug line in standby gives once an
        /// acknowledged `<Image View On>` has woken it.
        pub(crate) wakes_to: Option<u16>,
        pub(crate) sent: Vec<Vec<u8>>,
        pub(crate) claims: usize,
    }

    impl Bus {
        fn configured(&self) -> bool {
            self.phys != PHYS_ADDR_INVALID && self.las.mask != 0
        }
    }

    impl Bus {
        pub(crate) fn with_tv(answers: &[TxStatus]) -> Self {
            Self {
                phys: 0x1000,
                claim_gives: 1 << 4,
                answers: answers.to_vec(),
                ..Self::default()
            }
        }
    }

    fn errno(n: i32) -> io::Error {
        io::Error::from_raw_os_error(n)
    }

    impl CecDevice for Bus {
        fn phys_addr(&mut self) -> io::Result<u16> {
            Ok(self.phys)
        }
        fn log_addrs(&mut self) -> io::Result<LogAddrs> {
            // Without a physical address the kernel keeps what was asked but claims nothing.
            Ok(LogAddrs {
                mask: if self.phys == PHYS_ADDR_INVALID {
                    0
                } else {
                    self.las.mask
                },
                ..self.las
            })
        }
        fn set_log_addrs(&mut self, claim: &Claim) -> io::Result<LogAddrs> {
            assert_eq!(claim, &CLAIM);
            self.claims += 1;
            self.las = LogAddrs {
                requested: 1,
                mask: self.claim_gives,
            };
            self.log_addrs()
        }
        fn set_initiator(&mut self) -> io::Result<()> {
            if self.busy {
                Err(errno(libc::EBUSY))
            } else {
                Ok(())
            }
        }
        fn transmit(&mut self, msg: &[u8]) -> io::Result<TxStatus> {
            if !self.configured() && msg[0] != 0xf0 {
                // An unconfigured adapter sends from the unregistered address to the TV only
                // (cec_transmit_msg_fh in the kernel).
                return Err(errno(libc::ENONET));
            }
            self.sent.push(msg.to_vec());
            let i = (self.sent.len() - 1).min(self.answers.len().saturating_sub(1));
            let status = self.answers.get(i).copied().unwrap_or(TxStatus::ACK);
            if let (Some(&IMAGE_VIEW_ON), true, Some(phys)) =
                (msg.get(1), status.acknowledged(), self.wakes_to)
            {
                self.phys = phys;
            }
            Ok(status)
        }
    }

    /// A bus shared between a test and the switch that opened it.
    impl CecDevice for std::rc::Rc<std::cell::RefCell<Bus>> {
        fn phys_addr(&mut self) -> io::Result<u16> {
            self.borrow_mut().phys_addr()
        }
        fn log_addrs(&mut self) -> io::Result<LogAddrs> {
            self.borrow_mut().log_addrs()
        }
        fn set_log_addrs(&mut self, claim: &Claim) -> io::Result<LogAddrs> {
            self.borrow_mut().set_log_addrs(claim)
        }
        fn set_initiator(&mut self) -> io::Result<()> {
            self.borrow_mut().set_initiator()
        }
        fn transmit(&mut self, msg: &[u8]) -> io::Result<TxStatus> {
            self.borrow_mut().transmit(msg)
        }
    }

    fn no_sleep() -> impl FnMut(Duration) {
        |_| {}
    }

    #[test]
    fn off_claims_a_playback_address_once_and_sends_standby_to_the_tv() {
        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        let done = turn_off(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap();
        assert_eq!(done.from, 4, "Playback 1");
        assert_eq!(bus.sent, vec![vec![0x40, 0x36]]);
        assert_eq!(bus.claims, 1);
        // The address stays claimed in the kernel: the next switch uses it as it is.
        turn_off(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap();
        assert_eq!(bus.claims, 1);
    }

    #[test]
    fn on_wakes_the_tv_then_says_which_input_is_ours() {
        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        bus.phys = 0x2100;
        let done = turn_on(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap();
        assert_eq!(
            bus.sent,
            vec![vec![0x40, 0x04], vec![0x4f, 0x82, 0x21, 0x00]],
            "Image View On to 0, then Active Source 2.1.0.0 to all"
        );
        assert_eq!(done.active_source, Some(true));
    }

    #[test]
    fn an_address_someone_else_claimed_is_used_as_it_is() {
        // `cec-ctl --playback` ran before, or a CEC daemon set up the adapter.
        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        bus.las = LogAddrs {
            requested: 1,
            mask: 1 << 8,
        };
        turn_off(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap();
        assert_eq!(bus.claims, 0);
        assert_eq!(bus.sent, vec![vec![0x80, 0x36]]);
    }

    #[test]
    fn a_full_bus_falls_back_to_the_unregistered_address() {
        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        bus.claim_gives = 1 << 15;
        turn_off(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap();
        assert_eq!(bus.sent, vec![vec![0xf0, 0x36]]);
    }

    #[test]
    fn a_tv_that_nacks_is_tried_three_times_with_pauses_then_named() {
        let mut bus = Bus::with_tv(&[TxStatus::NACK]);
        let mut slept = Vec::new();
        let e = turn_off(&mut bus, "/dev/cec0", &mut |d| slept.push(d)).unwrap_err();
        assert!(
            matches!(
                e,
                CecError::Nack {
                    message: "Standby",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(bus.sent.len(), 3);
        assert_eq!(slept, TRY_PAUSES.to_vec());
        let text = e.to_string();
        assert!(
            text.contains("/dev/cec0") && text.contains("Anynet+"),
            "{text}"
        );
    }

    #[test]
    fn a_nack_while_the_tv_wakes_is_retried() {
        let mut bus = Bus::with_tv(&[TxStatus::NACK, TxStatus::ACK]);
        turn_on(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap();
        assert_eq!(bus.sent.len(), 3, "IVO twice, then Active Source");
    }

    #[test]
    fn a_broadcast_that_fails_does_not_undo_a_woken_tv() {
        let lost = TxStatus(1 << 1 | 1 << 5);
        let mut bus = Bus::with_tv(&[TxStatus::ACK, lost]);
        let done = turn_on(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap();
        assert_eq!(done.active_source, Some(false));
        assert_eq!(
            bus.sent.len(),
            4,
            "IVO, then Active Source tried three times"
        );
    }

    #[test]
    fn a_bus_error_is_named_with_its_status() {
        let mut bus = Bus::with_tv(&[TxStatus(1 << 3 | 1 << 5)]);
        let e = turn_off(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/cec0: <Standby> was not sent: low drive, max retries"
        );
    }

    #[test]
    fn a_tv_that_dropped_hot_plug_in_standby_is_still_reached_from_the_unregistered_address() {
        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        bus.phys = PHYS_ADDR_INVALID;
        bus.wakes_to = Some(0x1000);
        let mut slept = Vec::new();
        let done = turn_on(&mut bus, "/dev/cec0", &mut |d| slept.push(d)).unwrap();
        // Image View On from 15 to the TV; once it is awake and the adapter has its address
        // (claimed now), Active Source from that address.
        assert_eq!(
            bus.sent,
            vec![vec![0xf0, 0x04], vec![0x4f, 0x82, 0x10, 0x00]]
        );
        assert_eq!(done.active_source, Some(true));
        assert_eq!(slept, vec![WAKE_POLL], "one look, the address was there");
        assert_eq!(bus.claims, 1);

        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        bus.phys = PHYS_ADDR_INVALID;
        turn_off(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap();
        assert_eq!(bus.sent, vec![vec![0xf0, 0x36]]);
        assert_eq!(bus.claims, 0, "nothing to claim without a physical address");
    }

    #[test]
    fn a_tv_that_wakes_without_an_address_is_waited_for_a_few_seconds_only() {
        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        bus.phys = PHYS_ADDR_INVALID;
        let mut slept = Vec::new();
        let done = turn_on(&mut bus, "/dev/cec0", &mut |d| slept.push(d)).unwrap();
        assert_eq!(done.active_source, Some(false));
        assert_eq!(bus.sent, vec![vec![0xf0, 0x04]]);
        assert_eq!(slept, vec![WAKE_POLL; WAKE_POLLS]);
    }

    #[test]
    fn no_physical_address_and_no_answer_is_an_unplugged_tv() {
        let mut bus = Bus::with_tv(&[TxStatus::NACK]);
        bus.phys = PHYS_ADDR_INVALID;
        for r in [
            turn_off(&mut bus, "/dev/cec0", &mut no_sleep()),
            turn_on(&mut bus, "/dev/cec0", &mut no_sleep()),
        ] {
            let e = r.unwrap_err();
            assert!(matches!(e, CecError::NoPhysAddr { .. }), "{e:?}");
            assert!(e.to_string().contains("unplugged"), "{e}");
        }
        assert!(bus.sent.iter().all(|m| m[0] == 0xf0), "{:?}", bus.sent);
        assert_eq!(bus.claims, 0);
    }

    #[test]
    fn a_busy_adapter_is_named_and_left_alone() {
        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        bus.busy = true;
        let e = turn_off(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap_err();
        assert!(matches!(e, CecError::Busy { .. }), "{e}");
        assert!(e.to_string().contains("another program"), "{e}");
        assert!(bus.sent.is_empty());
        assert_eq!(bus.claims, 0);
    }

    #[test]
    fn an_adapter_configured_by_someone_else_without_an_address_is_not_claimed_over() {
        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        bus.las = LogAddrs {
            requested: 1,
            mask: 0,
        };
        let e = turn_off(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap_err();
        assert!(matches!(e, CecError::NotConfigured { .. }), "{e}");
        assert_eq!(bus.claims, 0);
    }

    #[test]
    fn a_claim_the_bus_refuses_is_not_configured() {
        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        bus.claim_gives = 0;
        let e = turn_off(&mut bus, "/dev/cec0", &mut no_sleep()).unwrap_err();
        assert!(matches!(e, CecError::NotConfigured { .. }), "{e}");
        assert!(bus.sent.is_empty());
    }

    #[test]
    fn a_transmit_the_kernel_refuses_is_typed_by_its_errno() {
        struct Refuses(i32);
        impl CecDevice for Refuses {
            fn phys_addr(&mut self) -> io::Result<u16> {
                Ok(0x1000)
            }
            fn log_addrs(&mut self) -> io::Result<LogAddrs> {
                Ok(LogAddrs {
                    requested: 1,
                    mask: 1 << 4,
                })
            }
            fn set_log_addrs(&mut self, _: &Claim) -> io::Result<LogAddrs> {
                unreachable!("already claimed")
            }
            fn set_initiator(&mut self) -> io::Result<()> {
                Ok(())
            }
            fn transmit(&mut self, _: &[u8]) -> io::Result<TxStatus> {
                Err(errno(self.0))
            }
        }
        let off = |n| turn_off(&mut Refuses(n), "/dev/cec0", &mut no_sleep()).unwrap_err();
        assert!(matches!(off(libc::EBUSY), CecError::Busy { .. }));
        assert!(matches!(off(libc::ENONET), CecError::NotConfigured { .. }));
        assert!(matches!(off(libc::ENOTTY), CecError::Unsupported { .. }));
        assert!(matches!(
            off(libc::EIO),
            CecError::Io {
                step: "transmitting",
                ..
            }
        ));
    }

    #[test]
    fn the_check_polls_from_the_unregistered_address_without_claiming() {
        let mut bus = Bus::with_tv(&[TxStatus::ACK]);
        assert_eq!(poll_tv(&mut bus, "/dev/cec0").unwrap(), Some(0x1000));
        assert_eq!(bus.sent, vec![vec![0xf0]]);
        assert_eq!(bus.claims, 0);
        let mut bus = Bus::with_tv(&[TxStatus::NACK]);
        assert!(matches!(
            poll_tv(&mut bus, "/dev/cec0"),
            Err(CecError::Nack { .. })
        ));
    }

    #[test]
    fn physical_addresses_read_as_hdmi_writes_them() {
        assert_eq!(show_phys(0x1000), "1.0.0.0");
        assert_eq!(show_phys(0x21a0), "2.1.a.0");
    }
}
