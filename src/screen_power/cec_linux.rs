//! The kernel's CEC framework: `/dev/cecN` and its ioctls (linux/cec.h), with the structs laid
//! out as the header lays them out. No libcec and no `cec-ctl` subprocess: five ioctls are all
//! it takes, and the kernel does the bus timing and the retransmissions.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::cec::{CecDevice, Claim, LogAddrs, TxStatus};

const CEC_MAX_MSG_SIZE: usize = 16;
const CEC_MAX_LOG_ADDRS: usize = 4;
const CEC_MODE_INITIATOR: u32 = 1;
const CEC_LOG_ADDR_TYPE_PLAYBACK: u8 = 3;
const CEC_OP_PRIM_DEVTYPE_PLAYBACK: u8 = 4;
const CEC_OP_ALL_DEVTYPE_PLAYBACK: u8 = 0x10;
const CEC_OP_CEC_VERSION_1_4: u8 = 5;
const CEC_VENDOR_ID_NONE: u32 = 0xffff_ffff;
const CEC_LOG_ADDRS_FL_ALLOW_UNREG_FALLBACK: u32 = 1;

/// `struct cec_msg`.
#[repr(C)]
#[derive(Debug, Default)]
struct CecMsg {
    tx_ts: u64,
    rx_ts: u64,
    len: u32,
    timeout: u32,
    sequence: u32,
    flags: u32,
    msg: [u8; CEC_MAX_MSG_SIZE],
    reply: u8,
    rx_status: u8,
    tx_status: u8,
    tx_arb_lost_cnt: u8,
    tx_nack_cnt: u8,
    tx_low_drive_cnt: u8,
    tx_error_cnt: u8,
}

/// `struct cec_log_addrs`.
#[repr(C)]
#[derive(Debug, Default)]
struct CecLogAddrs {
    log_addr: [u8; CEC_MAX_LOG_ADDRS],
    log_addr_mask: u16,
    cec_version: u8,
    num_log_addrs: u8,
    vendor_id: u32,
    flags: u32,
    osd_name: [u8; 15],
    primary_device_type: [u8; CEC_MAX_LOG_ADDRS],
    log_addr_type: [u8; CEC_MAX_LOG_ADDRS],
    all_device_types: [u8; CEC_MAX_LOG_ADDRS],
    features: [[u8; 12]; CEC_MAX_LOG_ADDRS],
}

const MAGIC: u32 = b'a' as u32;
const CEC_ADAP_G_PHYS_ADDR: libc::Ioctl = libc::_IOR::<u16>(MAGIC, 1);
const CEC_ADAP_G_LOG_ADDRS: libc::Ioctl = libc::_IOR::<CecLogAddrs>(MAGIC, 3);
const CEC_ADAP_S_LOG_ADDRS: libc::Ioctl = libc::_IOWR::<CecLogAddrs>(MAGIC, 4);
const CEC_TRANSMIT: libc::Ioctl = libc::_IOWR::<CecMsg>(MAGIC, 5);
const CEC_S_MODE: libc::Ioctl = libc::_IOW::<u32>(MAGIC, 9);

/// An open `/dev/cecN`, in blocking mode: a transmit returns once the TV has acknowledged or
/// the kernel has given up, a claim once the bus has answered.
pub(crate) struct LinuxCec {
    file: File,
}

impl LinuxCec {
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Self { file })
    }

    /// # Safety
    /// `arg` must be the type the request number encodes (checked by the layout test).
    unsafe fn ioctl<T>(&self, request: libc::Ioctl, arg: *mut T) -> io::Result<()> {
        // SAFETY: the caller passes the struct `request` was built from; the fd is open.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), request, arg) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

fn log_addrs_of(las: &CecLogAddrs) -> LogAddrs {
    LogAddrs {
        requested: las.num_log_addrs,
        mask: las.log_addr_mask,
    }
}

impl CecDevice for LinuxCec {
    fn phys_addr(&mut self) -> io::Result<u16> {
        let mut phys: u16 = 0;
        // SAFETY: CEC_ADAP_G_PHYS_ADDR takes a __u16.
        unsafe { self.ioctl(CEC_ADAP_G_PHYS_ADDR, &mut phys) }?;
        Ok(phys)
    }

    fn log_addrs(&mut self) -> io::Result<LogAddrs> {
        let mut las = CecLogAddrs::default();
        // SAFETY: CEC_ADAP_G_LOG_ADDRS takes a struct cec_log_addrs.
        unsafe { self.ioctl(CEC_ADAP_G_LOG_ADDRS, &mut las) }?;
        Ok(log_addrs_of(&las))
    }

    fn set_log_addrs(&mut self, claim: &Claim) -> io::Result<LogAddrs> {
        let mut las = claim_struct(claim);
        // SAFETY: CEC_ADAP_S_LOG_ADDRS takes a struct cec_log_addrs.
        unsafe { self.ioctl(CEC_ADAP_S_LOG_ADDRS, &mut las) }?;
        Ok(log_addrs_of(&las))
    }

    fn set_initiator(&mut self) -> io::Result<()> {
        let mut mode = CEC_MODE_INITIATOR;
        // SAFETY: CEC_S_MODE takes a __u32.
        unsafe { self.ioctl(CEC_S_MODE, &mut mode) }
    }

    fn transmit(&mut self, bytes: &[u8]) -> io::Result<TxStatus> {
        if bytes.is_empty() || bytes.len() > CEC_MAX_MSG_SIZE {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let mut msg = CecMsg {
            len: bytes.len() as u32,
            ..CecMsg::default()
        };
        msg.msg[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: CEC_TRANSMIT takes a struct cec_msg.
        unsafe { self.ioctl(CEC_TRANSMIT, &mut msg) }?;
        Ok(TxStatus(msg.tx_status))
    }
}

/// One playback device, as `cec-ctl --playback` asks for it.
fn claim_struct(claim: &Claim) -> CecLogAddrs {
    let mut las = CecLogAddrs {
        cec_version: CEC_OP_CEC_VERSION_1_4,
        num_log_addrs: 1,
        vendor_id: CEC_VENDOR_ID_NONE,
        flags: CEC_LOG_ADDRS_FL_ALLOW_UNREG_FALLBACK,
        ..CecLogAddrs::default()
    };
    let name = claim.osd_name.as_bytes();
    let n = name.len().min(las.osd_name.len() - 1);
    las.osd_name[..n].copy_from_slice(&name[..n]);
    las.primary_device_type[0] = CEC_OP_PRIM_DEVTYPE_PLAYBACK;
    las.log_addr_type[0] = CEC_LOG_ADDR_TYPE_PLAYBACK;
    las.all_device_types[0] = CEC_OP_ALL_DEVTYPE_PLAYBACK;
    las
}

/// The CEC adapters, `/dev/cec0` first.
pub(crate) fn devices(dev: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dev)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix("cec")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// The numbers linux/cec.h gives, printed by a C program built against Debian's
    /// linux-libc-dev (`#include <sys/ioctl.h>`, `<linux/cec.h>`; `printf("%lx",
    /// (unsigned long)CEC_TRANSMIT)`, `sizeof(struct cec_msg)`, `offsetof(struct cec_msg,
    /// tx_status)`, ...), built with gcc for amd64 and with aarch64-linux-gnu-gcc for arm64
    /// (run under qemu-aarch64): the same numbers on both, which use the generic ioctl
    /// encoding. The size is part of each ioctl number, so a struct laid out wrong would be
    /// refused by the kernel (ENOTTY) rather than corrupt memory; the layout is checked here
    /// all the same.
    #[test]
    fn the_ioctls_and_structs_match_linux_cec_h() {
        assert_eq!(size_of::<CecMsg>(), 56);
        assert_eq!(size_of::<CecLogAddrs>(), 92);
        assert_eq!(offset_of!(CecMsg, len), 16);
        assert_eq!(offset_of!(CecMsg, msg), 32);
        assert_eq!(offset_of!(CecMsg, tx_status), 50);
        assert_eq!(offset_of!(CecLogAddrs, vendor_id), 8);
        assert_eq!(offset_of!(CecLogAddrs, osd_name), 16);
        assert_eq!(offset_of!(CecLogAddrs, features), 43);
        let numbers: [(libc::Ioctl, libc::Ioctl); 5] = [
            (CEC_ADAP_G_PHYS_ADDR, 0x8002_6101),
            (CEC_ADAP_G_LOG_ADDRS, 0x805c_6103),
            (CEC_ADAP_S_LOG_ADDRS, 0xc05c_6104),
            (CEC_TRANSMIT, 0xc038_6105),
            (CEC_S_MODE, 0x4004_6109),
        ];
        for (ours, header) in numbers {
            assert_eq!(ours, header, "{ours:#x} != {header:#x}");
        }
    }

    #[test]
    fn the_claim_is_one_playback_device_named_pbikiosk() {
        let las = claim_struct(&super::super::cec::CLAIM);
        assert_eq!(las.num_log_addrs, 1);
        assert_eq!(&las.osd_name[..9], b"pbikiosk\0");
        assert_eq!(las.log_addr_type[0], CEC_LOG_ADDR_TYPE_PLAYBACK);
        assert_eq!(las.primary_device_type[0], CEC_OP_PRIM_DEVTYPE_PLAYBACK);
        // A name longer than the field keeps its terminating zero.
        let long = claim_struct(&Claim {
            osd_name: "a-very-long-screen-name",
        });
        assert_eq!(long.osd_name[14], 0);
    }

    #[test]
    fn adapters_are_found_in_number_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["cec10", "cec1", "cec0", "cecx", "tty0"] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let names: Vec<String> = devices(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["cec0", "cec1", "cec10"]);
        assert!(devices(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_cec_adapter_refuses_the_ioctls() {
        // /dev/null answers ENOTTY to every ioctl: what a wrong cec_device gives.
        let mut dev = LinuxCec::open(Path::new("/dev/null")).unwrap();
        let e = dev.phys_addr().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "{e}");
        let e = dev.transmit(&[0x40, 0x36]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "{e}");
    }
}
