//! `[display]`: screen rotation, GPU compositing, the layout of reports, screen hours and the
//! means that turns the screen off.

use super::walk::{Ctx, Section, shown};
use super::{ConfigError, DisplayConfig, GpuMode};
use crate::report_layout::ReportLayout;

const DISPLAY_KEYS: &[&str] = &[
    "rotation",
    "gpu",
    "report_layout",
    "on",
    "power_via",
    "cec_device",
];

pub(super) fn parse_display(cx: &Ctx, s: &Section) -> Result<DisplayConfig, ConfigError> {
    s.check_table_keys(cx, "[display]", DISPLAY_KEYS)?;
    let rotation = match s.int(cx, "rotation", 0..=270, "degrees", 90)? {
        None => None,
        Some(r @ (0 | 90 | 180 | 270)) => Some(r as u16),
        Some(r) => {
            let span = s.get("rotation").map(|v| v.span());
            return Err(cx.invalid(
                &s.key("rotation"),
                span.as_ref(),
                format!("{r} is not a quarter turn"),
                "Set rotation to 0, 90, 180 or 270 (degrees clockwise; 90 or 270 for a portrait screen).",
            ));
        }
    };
    let gpu = match s.string(cx, "gpu")? {
        None | Some(("auto", _)) => GpuMode::Auto,
        Some(("on", _)) => GpuMode::On,
        Some(("off", _)) => GpuMode::Off,
        Some((other, span)) => {
            return Err(cx.invalid(
                &s.key("gpu"),
                Some(&span),
                format!("{} is not a GPU setting", shown(other)),
                "Set gpu to \"auto\" (GPU compositing when the machine has a GPU), \"on\" or \"off\" (try \"off\" if the screen flickers or stays black with a GPU driver).",
            ));
        }
    };
    let report_layout = match s.string(cx, "report_layout")? {
        None => ReportLayout::default(),
        Some((name, span)) => ReportLayout::parse(name).ok_or_else(|| {
            let valid: Vec<String> = ReportLayout::ALL
                .iter()
                .map(|l| format!("\"{}\"", l.as_str()))
                .collect();
            cx.invalid(
                &s.key("report_layout"),
                Some(&span),
                format!("{} is not a report layout", shown(name)),
                format!(
                    "Set report_layout to one of {}: \"auto\" shows a report's mobile layout on a screen taller than wide (fitted to the width when it has none), \"portrait\" the mobile layout on any screen, \"fit_width\" the normal layout as wide as the screen, \"landscape\" the whole normal page.",
                    valid.join(", ")
                ),
            )
        })?,
    };
    let on = s.windows(cx, "on")?.unwrap_or_default();
    let power = parse_power(cx, s)?;
    Ok(DisplayConfig {
        rotation,
        gpu,
        report_layout,
        on,
        power,
    })
}

/// `power_via` and `cec_device`.
fn parse_power(cx: &Ctx, s: &Section) -> Result<crate::screen_power::Settings, ConfigError> {
    use crate::screen_power::{PowerVia, Settings};
    let via = match s.string(cx, "power_via")? {
        None => PowerVia::default(),
        Some((word, span)) => PowerVia::parse(word).ok_or_else(|| {
            cx.invalid(
                &s.key("power_via"),
                Some(&span),
                format!("{} is not a means of turning the screen off", shown(word)),
                "Set power_via to \"auto\" (HDMI-CEC, then DDC/CI, each only when the screen acknowledges it), \"cec\" (TVs), \"ddc\" (monitors) or \"black\" (a black picture only; the screen stays lit).",
            )
        })?,
    };
    let cec_device = match s.string(cx, "cec_device")? {
        None => None,
        Some((path, span)) => {
            let number = path
                .strip_prefix("/dev/cec")
                .filter(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()));
            if number.is_none() {
                return Err(cx.invalid(
                    &s.key("cec_device"),
                    Some(&span),
                    format!("{} is not a CEC device", shown(path)),
                    "Set cec_device to a CEC adapter such as \"/dev/cec0\" (`ls /dev/cec*` lists them; on a Raspberry Pi 4 or 5, /dev/cec0 is the HDMI port next to the USB-C power), or leave it out to use the first one.",
                ));
            }
            Some(std::path::PathBuf::from(path))
        }
    };
    Ok(Settings { via, cec_device })
}

#[cfg(test)]
mod tests {
    use crate::config::GpuMode;
    use crate::config::test_support::*;
    use crate::report_layout::ReportLayout;

    #[test]
    fn display_gpu_setting() {
        assert_eq!(ok(&auth()).display.gpu, GpuMode::Auto);
        for (v, mode) in [
            ("auto", GpuMode::Auto),
            ("on", GpuMode::On),
            ("off", GpuMode::Off),
        ] {
            let text = format!("{}[display]\ngpu = \"{v}\"\n", auth());
            assert_eq!(ok(&text).display.gpu, mode, "{v}");
        }
        let text = format!("{}[display]\ngpu = \"yes\"\n", auth());
        let (msg, fix) = invalid(err(&text), "display.gpu", Some(8));
        assert!(
            msg.contains("the value of 3 characters starting \"y\"") && !msg.contains("yes"),
            "{msg}"
        );
        assert!(fix.contains("\"auto\"") && fix.contains("\"off\""), "{fix}");
        let text = format!("{}[display]\ngpu = true\n", auth());
        let e = err(&text).to_string();
        assert!(e.contains("display.gpu"), "{e}");
        // auto follows the machine; on and off do not.
        assert!(GpuMode::Auto.use_gpu(true));
        assert!(!GpuMode::Auto.use_gpu(false));
        assert!(GpuMode::On.use_gpu(false));
        assert!(!GpuMode::Off.use_gpu(true));
    }

    #[test]
    fn display_report_layout() {
        assert_eq!(ok(&auth()).display.report_layout, ReportLayout::Auto);
        for l in ReportLayout::ALL {
            let text = format!("{}[display]\nreport_layout = \"{}\"\n", auth(), l.as_str());
            assert_eq!(ok(&text).display.report_layout, l, "{}", l.as_str());
        }
        let text = format!("{}[display]\nreport_layout = \"mobile\"\n", auth());
        let (msg, fix) = invalid(err(&text), "display.report_layout", Some(8));
        assert!(
            msg.contains("the value of 6 characters starting \"mob\"") && !msg.contains("mobile"),
            "{msg}"
        );
        for v in ["\"auto\"", "\"landscape\"", "\"portrait\"", "\"fit_width\""] {
            assert!(fix.contains(v), "{fix}");
        }
        let text = format!("{}[display]\nreport_layout = 90\n", auth());
        let e = err(&text).to_string();
        assert!(e.contains("display.report_layout"), "{e}");
    }

    #[test]
    fn display_rotation_is_a_quarter_turn() {
        assert_eq!(ok(&auth()).display.rotation, None);
        let text = format!("{}[display]\nrotation = 90\n", auth());
        assert_eq!(ok(&text).display.rotation, Some(90));
        let text = format!("{}[display]\nrotation = 45\n", auth());
        let (msg, fix) = invalid(err(&text), "display.rotation", Some(8));
        assert!(msg.contains("quarter turn"), "{msg}");
        assert!(fix.contains("0, 90, 180 or 270"), "{fix}");
        let text = format!("{}[display]\nrotate = 90\n", auth());
        let (msg, _) = invalid(err(&text), "display.rotate", Some(8));
        assert!(
            msg.contains("unknown") || msg.contains("not a key"),
            "{msg}"
        );
    }

    #[test]
    fn screen_power_means() {
        use crate::screen_power::{PowerVia, Settings};
        assert_eq!(ok(&auth()).display.power, Settings::default());
        for v in PowerVia::ALL {
            let text = format!("{}[display]\npower_via = \"{}\"\n", auth(), v.as_str());
            assert_eq!(ok(&text).display.power.via, v);
        }
        let text = format!("{}[display]\npower_via = \"hdmi\"\n", auth());
        let (msg, fix) = invalid(err(&text), "display.power_via", Some(8));
        assert!(
            msg.contains("is not a means of turning the screen off"),
            "{msg}"
        );
        assert!(
            fix.contains("\"cec\"") && fix.contains("\"black\""),
            "{fix}"
        );
        let text = format!("{}[display]\npower_via = true\n", auth());
        let e = err(&text).to_string();
        assert!(e.contains("display.power_via"), "{e}");

        let text = format!(
            "{}[display]\npower_via = \"cec\"\ncec_device = \"/dev/cec1\"\n",
            auth()
        );
        assert_eq!(
            ok(&text).display.power,
            Settings {
                via: PowerVia::Cec,
                cec_device: Some("/dev/cec1".into())
            }
        );
        for bad in [
            "/dev/i2c-1",
            "cec0",
            "/dev/cec",
            "/dev/cec0/../sda",
            "/tmp/cec0",
        ] {
            let text = format!("{}[display]\n\ncec_device = \"{bad}\"\n", auth());
            let (msg, fix) = invalid(err(&text), "display.cec_device", Some(9));
            assert!(msg.contains("is not a CEC device"), "{bad}: {msg}");
            assert!(fix.contains("ls /dev/cec*"), "{fix}");
        }
    }

    #[test]
    fn screen_on_hours() {
        assert!(ok(&auth()).display.on.is_always());
        let text = format!("{}[display]\non = \"mon-fri 07:00-19:00\"\n", auth());
        assert!(!ok(&text).display.on.is_always());
        let text = format!("{}[display]\non = \"mon-fri 07:00-19\"\n", auth());
        let (msg, fix) = invalid(err(&text), "display.on", Some(8));
        assert!(msg.contains("times are not valid"), "{msg}");
        assert!(fix.contains("past midnight"), "{fix}");
    }
}
