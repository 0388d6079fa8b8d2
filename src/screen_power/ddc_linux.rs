//! The I²C side of DDC/CI on Linux: which `/dev/i2c-N` belongs to which connected DRM output,
//! and that device with the display's address selected (`I2C_SLAVE`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::ddc::{Bus, DISPLAY_ADDR, DdcDevice};

/// linux/i2c-dev.h.
const I2C_SLAVE: libc::Ioctl = 0x0703;

pub(crate) struct LinuxI2c {
    file: File,
}

impl LinuxI2c {
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        // SAFETY: I2C_SLAVE takes the address as the argument itself, not a pointer.
        let r = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                I2C_SLAVE,
                libc::c_ulong::from(DISPLAY_ADDR),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { file })
    }
}

impl DdcDevice for LinuxI2c {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        // One write is one I²C transaction: write_all could split it.
        let n = self.file.write(bytes)?;
        if n != bytes.len() {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let n = self.file.read(buf)?;
        if n != buf.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        Ok(())
    }
}

/// The DDC buses of the connected outputs under `sys_drm` (`/sys/class/drm`): a connector's
/// `ddc` link names its I²C adapter, and some drivers put the adapter below the connector
/// instead (`card0-DP-1/i2c-7`).
pub(crate) fn buses(sys_drm: &Path, dev: &Path) -> Vec<Bus> {
    let mut found: Vec<Bus> = std::fs::read_dir(sys_drm)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let connector = e.file_name().to_str()?.to_owned();
            // Connectors are card<N>-<type>-<n>; card<N> itself and renderD<N> are not.
            if !connector.starts_with("card") || !connector.contains('-') {
                return None;
            }
            let dir = e.path();
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            if status.trim() != "connected" {
                return None;
            }
            let adapter = std::fs::read_link(dir.join("ddc"))
                .ok()
                .and_then(|t| t.file_name()?.to_str().map(str::to_owned))
                .filter(|n| is_i2c_name(n))
                .or_else(|| i2c_child(&dir))?;
            Some(Bus {
                connector,
                device: dev.join(adapter),
            })
        })
        .collect();
    found.sort_by(|a, b| a.connector.cmp(&b.connector));
    found
}

fn is_i2c_name(name: &str) -> bool {
    name.strip_prefix("i2c-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn i2c_child(dir: &Path) -> Option<String> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .find(|n| is_i2c_name(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    fn connector(root: &Path, name: &str, status: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("status"), format!("{status}\n")).unwrap();
        dir
    }

    #[test]
    fn connected_outputs_are_mapped_to_their_i2c_devices() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("card0")).unwrap();
        std::fs::create_dir_all(r.join("renderD128")).unwrap();
        // The ddc link, as i915 and vc4 make it.
        let hdmi = connector(r, "card0-HDMI-A-1", "connected");
        symlink("../../../i2c-5", hdmi.join("ddc")).unwrap();
        // The adapter as the connector's child, as amdgpu makes it.
        let dp = connector(r, "card0-DP-1", "connected");
        std::fs::create_dir_all(dp.join("i2c-7")).unwrap();
        // Not connected, or no bus at all (a laptop panel over eDP-AUX without one).
        let off = connector(r, "card0-HDMI-A-2", "disconnected");
        symlink("../../../i2c-6", off.join("ddc")).unwrap();
        connector(r, "card0-eDP-1", "connected");

        let buses = buses(r, Path::new("/dev"));
        assert_eq!(
            buses,
            vec![
                Bus {
                    connector: "card0-DP-1".into(),
                    device: "/dev/i2c-7".into()
                },
                Bus {
                    connector: "card0-HDMI-A-1".into(),
                    device: "/dev/i2c-5".into()
                },
            ]
        );
        assert_eq!(buses[1].describe(), "card0-HDMI-A-1 (/dev/i2c-5)");
        assert!(super::buses(&r.join("none"), Path::new("/dev")).is_empty());
    }

    #[test]
    fn i2c_names() {
        assert!(is_i2c_name("i2c-0") && is_i2c_name("i2c-12"));
        assert!(!is_i2c_name("i2c-") && !is_i2c_name("i2c-x") && !is_i2c_name("ddc"));
    }

    #[test]
    fn a_file_that_is_not_an_i2c_bus_is_refused() {
        let e = LinuxI2c::open(Path::new("/dev/null")).err().unwrap();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY), "{e}");
    }
}
