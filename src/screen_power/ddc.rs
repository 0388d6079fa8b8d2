//! DDC/CI (VESA): a monitor's power mode, VCP feature 0xD6, set over the I²C bus of its video
//! cable. The packets and their checksums are built here and checked against the byte sequences
//! the DDC/CI and MCCS documents give; the bus itself is a [`DdcDevice`] (`/dev/i2c-N` in the
//! product, a recording double in the tests).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

/// The display's DDC/CI address (7-bit); 0x6E on the wire when writing.
pub(crate) const DISPLAY_ADDR: u16 = 0x37;
const DEST_WRITE: u8 = 0x6e;
/// The host's source address in a request.
const HOST: u8 = 0x51;
/// What a reply's checksum starts from (the host's "virtual" address, as the standard says).
const REPLY_SEED: u8 = 0x50;
const GET_VCP: u8 = 0x01;
const GET_VCP_REPLY: u8 = 0x02;
const SET_VCP: u8 = 0x03;
/// VCP feature: power mode.
pub(crate) const POWER_MODE: u8 = 0xd6;
/// A request needs this long before the monitor has its reply ready (DDC/CI: 40 ms).
const REPLY_WAIT: Duration = Duration::from_millis(40);
/// Pauses between the tries of one command; a monitor waking from standby answers late.
const TRY_PAUSES: [Duration; 2] = [Duration::from_millis(100), Duration::from_secs(1)];

/// MCCS power mode values of VCP 0xD6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PowerMode {
    On,
    /// DPM off (0x04): the backlight goes out, the monitor wakes on a signal or a command.
    Off,
}

impl PowerMode {
    pub(crate) fn value(self) -> u8 {
        match self {
            Self::On => 0x01,
            Self::Off => 0x04,
        }
    }
}

/// A connected output's DDC bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bus {
    /// The DRM connector, e.g. `card0-HDMI-A-1`.
    pub(crate) connector: String,
    /// Its I²C device, e.g. `/dev/i2c-5`.
    pub(crate) device: PathBuf,
}

impl Bus {
    pub(crate) fn describe(&self) -> String {
        format!("{} ({})", self.connector, self.device.display())
    }
}

/// The I²C boundary: a bus with the display's address selected.
pub(crate) trait DdcDevice {
    /// One I²C write; an error when no device acknowledges (ENXIO, EREMOTEIO).
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// One I²C read of `buf.len()` bytes.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<()>;
}

#[derive(Debug, Error)]
pub(crate) enum DdcError {
    #[error(
        "no DDC/CI answer: DDC/CI is switched off in the monitor's menu, or the display (a TV) does not speak it"
    )]
    NoAnswer,
    #[error("the monitor does not support VCP feature 0x{0:02X}")]
    Unsupported(u8),
    #[error("the monitor's reply was garbled ({0})")]
    BadReply(&'static str),
    #[error("{0}")]
    Io(io::Error),
}

fn checksum(seed: u8, bytes: &[u8]) -> u8 {
    bytes.iter().fold(seed, |c, b| c ^ b)
}

/// A request as written after the address: source, length (0x80 | n), the n bytes, checksum
/// (XOR of the destination address and everything before it).
fn request(body: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(body.len() + 3);
    p.push(HOST);
    p.push(0x80 | body.len() as u8);
    p.extend_from_slice(body);
    p.push(checksum(DEST_WRITE, &p));
    p
}

/// Set VCP: `feature` to `value`.
pub(crate) fn set_vcp(feature: u8, value: u16) -> Vec<u8> {
    let [hi, lo] = value.to_be_bytes();
    request(&[SET_VCP, feature, hi, lo])
}

/// Get VCP: ask for `feature`.
pub(crate) fn get_vcp(feature: u8) -> Vec<u8> {
    request(&[GET_VCP, feature])
}

/// A Get VCP reply (11 bytes): the current value of `feature`.
fn parse_reply(reply: &[u8; 11], feature: u8) -> Result<u16, DdcError> {
    if reply[..10] == [0; 10] || reply[..10] == [0xff; 10] {
        return Err(DdcError::NoAnswer);
    }
    if checksum(REPLY_SEED, &reply[..10]) != reply[10] {
        return Err(DdcError::BadReply("checksum"));
    }
    if reply[1] != 0x88 || reply[2] != GET_VCP_REPLY || reply[4] != feature {
        return Err(DdcError::BadReply("not a reply to Get VCP"));
    }
    if reply[3] != 0 {
        return Err(DdcError::Unsupported(feature));
    }
    Ok(u16::from_be_bytes([reply[8], reply[9]]))
}

fn is_nack(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENXIO | libc::EREMOTEIO))
}

fn write_with_tries(
    dev: &mut dyn DdcDevice,
    bytes: &[u8],
    sleep: &mut dyn FnMut(Duration),
) -> Result<(), DdcError> {
    let mut pauses = TRY_PAUSES.iter();
    loop {
        match dev.write(bytes) {
            Ok(()) => return Ok(()),
            Err(e) => match pauses.next() {
                Some(p) if is_nack(&e) => sleep(*p),
                _ if is_nack(&e) => return Err(DdcError::NoAnswer),
                _ => return Err(DdcError::Io(e)),
            },
        }
    }
}

/// Set the power mode. A monitor that acknowledged the write has taken the command; whether it
/// obeys is its business, which is why the black page stays too.
pub(crate) fn set_power(
    dev: &mut dyn DdcDevice,
    mode: PowerMode,
    sleep: &mut dyn FnMut(Duration),
) -> Result<(), DdcError> {
    write_with_tries(dev, &set_vcp(POWER_MODE, mode.value().into()), sleep)
}

/// The monitor's power mode now (`pbikiosk check`; changes nothing).
pub(crate) fn get_power(
    dev: &mut dyn DdcDevice,
    sleep: &mut dyn FnMut(Duration),
) -> Result<u16, DdcError> {
    write_with_tries(dev, &get_vcp(POWER_MODE), sleep)?;
    sleep(REPLY_WAIT);
    let mut reply = [0u8; 11];
    dev.read(&mut reply).map_err(|e| {
        if is_nack(&e) {
            DdcError::NoAnswer
        } else {
            DdcError::Io(e)
        }
    })?;
    parse_reply(&reply, POWER_MODE)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A monitor on the bus: acknowledges writes as told (the last answer repeats) and replies
    /// to Get VCP with its power mode.
    #[derive(Debug, Default)]
    pub(crate) struct Monitor {
        pub(crate) acks: Vec<bool>,
        pub(crate) written: Vec<Vec<u8>>,
        pub(crate) mode: u16,
    }

    impl DdcDevice for Monitor {
        fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.written.push(bytes.to_vec());
            let i = (self.written.len() - 1).min(self.acks.len().saturating_sub(1));
            if self.acks.get(i).copied().unwrap_or(true) {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::ENXIO))
            }
        }
        fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
            let [hi, lo] = self.mode.to_be_bytes();
            let mut r = vec![0x6e, 0x88, 0x02, 0x00, POWER_MODE, 0x00, 0x00, 0x05, hi, lo];
            r.push(checksum(REPLY_SEED, &r));
            buf.copy_from_slice(&r);
            Ok(())
        }
    }

    impl DdcDevice for std::rc::Rc<std::cell::RefCell<Monitor>> {
        fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.borrow_mut().write(bytes)
        }
        fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
            self.borrow_mut().read(buf)
        }
    }

    #[test]
    fn packets_match_the_published_byte_sequences() {
        // The examples every DDC/CI implementation is checked against: Get VCP 0x10
        // (brightness) and Set VCP 0x10 to 50.
        assert_eq!(get_vcp(0x10), [0x51, 0x82, 0x01, 0x10, 0xac]);
        assert_eq!(
            set_vcp(0x10, 50),
            [0x51, 0x84, 0x03, 0x10, 0x00, 0x32, 0x9a]
        );
        // Power mode: what `ddcutil setvcp D6 4` and `setvcp D6 1` write.
        assert_eq!(
            set_vcp(POWER_MODE, 4),
            [0x51, 0x84, 0x03, 0xd6, 0x00, 0x04, 0x6a]
        );
        assert_eq!(
            set_vcp(POWER_MODE, 1),
            [0x51, 0x84, 0x03, 0xd6, 0x00, 0x01, 0x6f]
        );
    }

    #[test]
    fn a_reply_is_checked_before_it_is_believed() {
        // Brightness 42 of 100, as a monitor replies.
        let mut r = [
            0x6e, 0x88, 0x02, 0x00, 0x10, 0x00, 0x00, 0x64, 0x00, 0x2a, 0,
        ];
        r[10] = checksum(REPLY_SEED, &r[..10]);
        assert_eq!(r[10], 0x3e ^ 0x88 ^ 0x02 ^ 0x10 ^ 0x64 ^ 0x2a);
        assert_eq!(parse_reply(&r, 0x10).unwrap(), 42);
        let mut bad = r;
        bad[9] = 0x2b;
        assert!(matches!(
            parse_reply(&bad, 0x10),
            Err(DdcError::BadReply(_))
        ));
        assert!(matches!(parse_reply(&r, 0xd6), Err(DdcError::BadReply(_))));
        let mut unsupported = r;
        unsupported[3] = 1;
        unsupported[10] = checksum(REPLY_SEED, &unsupported[..10]);
        assert!(matches!(
            parse_reply(&unsupported, 0x10),
            Err(DdcError::Unsupported(0x10))
        ));
        assert!(matches!(
            parse_reply(&[0xff; 11], 0x10),
            Err(DdcError::NoAnswer)
        ));
    }

    #[test]
    fn power_off_and_on_are_one_write_each() {
        let mut m = Monitor::default();
        set_power(&mut m, PowerMode::Off, &mut |_| {}).unwrap();
        set_power(&mut m, PowerMode::On, &mut |_| {}).unwrap();
        assert_eq!(m.written, vec![set_vcp(0xd6, 4), set_vcp(0xd6, 1)]);
    }

    #[test]
    fn a_monitor_that_does_not_answer_is_tried_three_times() {
        let mut m = Monitor {
            acks: vec![false],
            ..Monitor::default()
        };
        let mut slept = Vec::new();
        let e = set_power(&mut m, PowerMode::Off, &mut |d| slept.push(d)).unwrap_err();
        assert!(matches!(e, DdcError::NoAnswer), "{e}");
        assert!(e.to_string().contains("monitor's menu"), "{e}");
        assert_eq!(m.written.len(), 3);
        assert_eq!(slept, TRY_PAUSES.to_vec());
        let mut m = Monitor {
            acks: vec![false, true],
            ..Monitor::default()
        };
        set_power(&mut m, PowerMode::On, &mut |_| {}).unwrap();
        assert_eq!(m.written.len(), 2, "answered at the second try");
    }

    #[test]
    fn the_power_mode_is_read_back() {
        let mut m = Monitor {
            mode: 1,
            ..Monitor::default()
        };
        let mut slept = Vec::new();
        assert_eq!(get_power(&mut m, &mut |d| slept.push(d)).unwrap(), 1);
        assert_eq!(m.written, vec![get_vcp(0xd6)]);
        assert_eq!(slept, vec![REPLY_WAIT]);
    }
}
