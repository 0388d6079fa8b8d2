//! Carrying out the player's outputs: messages and status screens to the page (through the
//! window), expired tokens to the token service, the playlist to the Power BI client.

use tao::event_loop::EventLoopProxy;
use tokio::sync::mpsc;

use crate::bridge::ToPage;
use crate::player::Output;
use crate::playlist::Item;
use crate::problem::Problem;
use crate::reach::{self, Route};
use crate::run::Live;
use crate::shell::ShellCommand;
use crate::status_screen::{self, Clock, DeviceFacts, ScreenContext};

/// The window, as the core reaches it (the GUI loop's proxy).
pub(crate) trait Window {
    /// Fire and forget: a window that is gone has nobody left to tell.
    fn command(&self, cmd: ShellCommand);
}

impl Window for EventLoopProxy<ShellCommand> {
    fn command(&self, cmd: ShellCommand) {
        let _ = self.send_event(cmd);
    }
}

/// What resolving the playlist gives the player back ([`crate::player::Input::Resolved`]).
pub(crate) type Resolution = Result<Vec<Result<Item, Problem>>, Problem>;

/// Where one config generation's outputs go.
pub(crate) struct Outlet<'a, W: Window> {
    pub(crate) window: &'a W,
    /// `None` when the config is not usable: nothing to sign in, nothing to resolve.
    pub(crate) live: Option<&'a Live>,
    pub(crate) resolved: &'a mpsc::Sender<Resolution>,
    /// How the web view goes out, for probes of the embed host.
    pub(crate) route: &'a Route,
    /// Where probe results go back ([`crate::player::Input::Probed`]).
    pub(crate) probed: &'a mpsc::Sender<Result<(), Problem>>,
    pub(crate) screen: ScreenContext,
}

impl<W: Window> Outlet<'_, W> {
    /// Carry out one output; `Some(code)` when the process must exit with it.
    pub(crate) fn dispatch(&self, output: Output) -> Option<i32> {
        match output {
            Output::Page(cmd) => self.send(&cmd),
            Output::Starting(activity) => {
                // A service principal has no account: the screen names none.
                let account = self
                    .live
                    .map(|l| l.config.auth.username.as_str())
                    .filter(|u| !u.is_empty());
                self.send(&status_screen::starting(
                    &activity,
                    account,
                    &DeviceFacts::read(),
                ));
            }
            Output::ShowProblem {
                problem,
                next_attempt,
            } => {
                let (device, clock) = (DeviceFacts::read(), Clock::now());
                let screen =
                    status_screen::screen(&problem, next_attempt, &self.screen, &device, &clock);
                self.send(&ToPage::Status { screen });
            }
            Output::HideProblem => self.send(&ToPage::HideStatus),
            Output::Offline(since) => self.send(&ToPage::Badge {
                text: status_screen::offline_badge(since, &Clock::now()),
            }),
            Output::TokenExpired => {
                if let Some(l) = self.live {
                    l.tokens.report_expired();
                }
            }
            Output::Resolve { token } => {
                if let Some(l) = self.live {
                    // The player holds an embed token when the app signs in: the REST calls
                    // need the Entra token it was made from.
                    let token = l
                        .api_token
                        .as_ref()
                        .and_then(|t| t.current(std::time::Instant::now()))
                        .unwrap_or(token);
                    let api = l.api.clone();
                    let items = match l.playlist.lock() {
                        Ok(p) => p.clone(),
                        Err(poisoned) => poisoned.into_inner().clone(),
                    };
                    let tx = self.resolved.clone();
                    tokio::spawn(async move {
                        let res = api.resolve_playlist(&token, &items).await;
                        let _ = tx.send(res).await;
                    });
                }
            }
            Output::Probe { host } => {
                let (route, tx) = (self.route.clone(), self.probed.clone());
                tokio::spawn(async move {
                    let result = reach::probe(&host, &route).await;
                    if let Err(u) = &result {
                        tracing::warn!(error = %u, "embed host probe failed");
                    }
                    let _ = tx.send(result.map_err(|u| u.to_problem())).await;
                });
            }
            // The same fresh web process and page as a repair; only the player counts it
            // differently.
            Output::ReloadPage { dark } | Output::RecyclePage { dark } => {
                self.window.command(ShellCommand::Reload { dark });
            }
            Output::Exit(code) => return Some(code),
        }
        None
    }

    fn send(&self, msg: &ToPage) {
        tracing::debug!(?msg, "to page");
        self.window.command(ShellCommand::Script(msg.to_script()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::problem::ProblemId;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<ShellCommand>>);

    impl Window for Recorder {
        fn command(&self, cmd: ShellCommand) {
            self.0.lock().unwrap().push(cmd);
        }
    }

    impl Recorder {
        fn take(&self) -> Vec<ShellCommand> {
            std::mem::take(&mut self.0.lock().unwrap())
        }

        /// The one script sent since the last call.
        fn script(&self) -> String {
            match self.take().as_slice() {
                [ShellCommand::Script(s)] => s.clone(),
                other => panic!("expected one script, got {other:?}"),
            }
        }
    }

    fn dispatch(window: &Recorder, not_configured: bool, output: Output) -> Option<i32> {
        let (tx, _rx) = mpsc::channel(1);
        let (probed, _probed_rx) = mpsc::channel(1);
        let outlet = Outlet {
            window,
            live: None,
            resolved: &tx,
            route: &Route::default(),
            probed: &probed,
            screen: ScreenContext {
                config_path: "/etc/pbikiosk/pbikiosk.toml".into(),
                not_configured,
                setup: None,
            },
        };
        outlet.dispatch(output)
    }

    #[test]
    fn status_screens_and_badges_go_to_the_page() {
        let w = Recorder::default();
        let problem = Problem::new(ProblemId::InvalidCredentials);
        let show = |problem: &Problem| Output::ShowProblem {
            problem: problem.clone(),
            next_attempt: None,
        };
        assert_eq!(dispatch(&w, false, show(&problem)), None);
        let s = w.script();
        assert!(s.contains(r#""type":"status""#), "{s}");
        assert!(s.contains(r#""problem":"invalid_credentials""#), "{s}");
        assert!(s.contains("/etc/pbikiosk/pbikiosk.toml"), "{s}");

        dispatch(&w, true, show(&problem));
        assert!(w.script().contains("This screen is not configured yet"));

        dispatch(&w, false, Output::HideProblem);
        assert_eq!(w.script(), ToPage::HideStatus.to_script());

        dispatch(&w, false, Output::Offline(None));
        assert_eq!(w.script(), ToPage::Badge { text: None }.to_script());
        dispatch(&w, false, Output::Offline(Some(std::time::Instant::now())));
        assert!(w.script().contains("Offline since "));
    }

    #[test]
    fn start_screen_steps_go_to_the_page() {
        let w = Recorder::default();
        let step = crate::player::Activity::Loading("Sales Overview".into());
        assert_eq!(dispatch(&w, false, Output::Starting(step)), None);
        let s = w.script();
        assert!(s.contains(r#""type":"starting""#), "{s}");
        assert!(s.contains("Loading ‘Sales Overview’"), "{s}");
        assert!(s.contains(r#"["pbikiosk","#), "{s}");
    }

    #[test]
    fn reload_and_exit_are_for_the_window_and_the_caller() {
        let w = Recorder::default();
        assert_eq!(
            dispatch(&w, false, Output::ReloadPage { dark: false }),
            None
        );
        assert!(matches!(
            w.take().as_slice(),
            [ShellCommand::Reload { dark: false }]
        ));
        assert_eq!(
            dispatch(&w, false, Output::RecyclePage { dark: true }),
            None
        );
        assert!(matches!(
            w.take().as_slice(),
            [ShellCommand::Reload { dark: true }]
        ));
        assert_eq!(dispatch(&w, false, Output::Exit(3)), Some(3));
        assert!(w.take().is_empty());
    }

    #[test]
    fn without_a_usable_config_there_is_nothing_to_refresh_or_resolve() {
        let w = Recorder::default();
        assert_eq!(dispatch(&w, true, Output::TokenExpired), None);
        let token = crate::secret::Secret::new("t");
        assert_eq!(dispatch(&w, true, Output::Resolve { token }), None);
        assert!(w.take().is_empty());
    }
}
