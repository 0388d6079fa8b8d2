//! `pbikiosk reports`: what the account can see, and a ready-to-paste playlist.

use std::fmt::Write as _;
use std::time::Instant;

use serde::Serialize;

use crate::check::{self, Failure, Line};
use crate::config::{AuthMethod, Config};
use crate::net;
use crate::powerbi::{Dashboard, Page, PowerBiClient, Report, Workspace};
use crate::problem::Problem;

#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    pub(crate) workspaces: Vec<WorkspaceEntry>,
    /// Listed for a service principal, whose membership needs a higher role.
    #[serde(skip)]
    pub(crate) app_only: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct WorkspaceEntry {
    #[serde(flatten)]
    pub(crate) workspace: Workspace,
    pub(crate) reports: Vec<ReportEntry>,
    pub(crate) dashboards: Vec<Dashboard>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReportEntry {
    #[serde(flatten)]
    pub(crate) report: Report,
    pub(crate) pages: Vec<Page>,
}

/// Why `reports` could not list what the account sees.
#[derive(Debug, thiserror::Error)]
#[error("{failure}")]
pub struct CollectError {
    /// The sign-in steps that passed before the failure, for context.
    pub passed: Vec<Line>,
    pub failure: Failure,
}

/// Sign in and list every workspace, report (with pages) and dashboard the account can see.
pub async fn collect(cfg: &Config) -> Result<Catalog, CollectError> {
    let deadline = Instant::now() + check::BUDGET;
    let mut passed = Vec::new();
    let http = net::client_for(cfg).map_err(|p| CollectError {
        passed: Vec::new(),
        failure: Failure::new("https client", p),
    })?;
    let signed = match check::sign_in(cfg, &http, deadline, &mut passed).await {
        Ok(s) => s,
        Err(failure) => return Err(CollectError { passed, failure }),
    };
    let mut api = PowerBiClient::new(http, cfg.cloud.api.clone());
    let app_only = cfg.auth.method == AuthMethod::ServicePrincipal;
    if app_only {
        // Refusals are the app's (tenant setting, membership), not a user's licence.
        api = api.for_app();
    }
    let token = &signed.token;
    let fail = |name: &str, p: Problem| CollectError {
        passed: passed.clone(),
        failure: Failure::new(name, p),
    };
    let mut out = Vec::new();
    for w in api
        .workspaces(token)
        .await
        .map_err(|p| fail("power bi", p))?
    {
        let mut reports = Vec::new();
        for r in api
            .reports(token, &w.id)
            .await
            .map_err(|p| fail(&w.name, p))?
        {
            let pages = api
                .pages(token, &w.id, &r.id)
                .await
                .map_err(|p| fail(&r.name, p))?;
            reports.push(ReportEntry { report: r, pages });
        }
        let dashboards = api
            .dashboards(token, &w.id)
            .await
            .map_err(|p| fail(&w.name, p))?;
        out.push(WorkspaceEntry {
            workspace: w,
            reports,
            dashboards,
        });
    }
    Ok(Catalog {
        workspaces: out,
        app_only,
    })
}

impl Catalog {
    /// A tree for people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if self.workspaces.is_empty() && self.app_only {
            s.push_str("The app sees no workspaces. Add it (its service principal) to a workspace as Member, Contributor or Admin: Viewer cannot make embed tokens.\n");
        } else if self.workspaces.is_empty() {
            s.push_str("The account sees no workspaces. Add it to a workspace (Viewer or higher); 'My workspace' content cannot be shown.\n");
        }
        for w in &self.workspaces {
            let cap = if w.workspace.is_on_dedicated_capacity {
                "dedicated capacity"
            } else {
                "shared capacity"
            };
            let _ = writeln!(s, "{}  {}  ({cap})", w.workspace.id, w.workspace.name);
            for r in &w.reports {
                let _ = writeln!(s, "  report     {}  {}", r.report.id, r.report.name);
                for p in &r.pages {
                    let _ = writeln!(s, "    page     {:<34} {}", p.name, p.display_name);
                }
            }
            for d in &w.dashboards {
                let _ = writeln!(s, "  dashboard  {}  {}", d.id, d.display_name);
            }
        }
        s
    }

    /// `[[playlist]]` entries for every report and dashboard, to paste into the config.
    pub fn to_toml(&self) -> String {
        let mut s = String::from("# Paste the entries you want into /etc/pbikiosk/pbikiosk.toml\n");
        for w in &self.workspaces {
            for r in &w.reports {
                let pages: Vec<String> = r.pages.iter().map(|p| format!("{:?}", p.name)).collect();
                let names: Vec<&str> = r.pages.iter().map(|p| p.display_name.as_str()).collect();
                let _ = writeln!(
                    s,
                    "\n# {} / {} (pages: {})\n[[playlist]]\nworkspace = \"{}\"\nreport = \"{}\"\npages = [{}]\nseconds = 30",
                    w.workspace.name,
                    r.report.name,
                    names.join(", "),
                    w.workspace.id,
                    r.report.id,
                    pages.join(", ")
                );
            }
            for d in &w.dashboards {
                let _ = writeln!(
                    s,
                    "\n# {} / {} (dashboard)\n[[playlist]]\nworkspace = \"{}\"\ndashboard = \"{}\"\nseconds = 30",
                    w.workspace.name, d.display_name, w.workspace.id, d.id
                );
            }
        }
        s
    }
}
