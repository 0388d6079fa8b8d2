//! The WebKit context the player's view runs in, and what it contains: web processes in
//! WebKit's bubblewrap sandbox, website data in memory only, the cookie policy Power BI needs,
//! no downloads, the `app://` scheme of the page and the web proxy.
//!
//! wry makes a context of its own inside its build, and a context's sandbox can only be turned
//! on while it has no web process: by then the view wry made already has one (WebKit aborts
//! the whole process on a late change). So the context is made here, before any view, and the
//! view wry builds joins it through a "related" view of that context.

/// The folder of the page and how to serve it, the proxy: what the context needs from
/// [`crate::shell::ShellOptions`].
pub(crate) struct ContextOptions<'a> {
    pub(crate) web_dir: &'a std::path::Path,
    pub(crate) proxy: Option<&'a WebProxy>,
}

/// The HTTP proxy the web view goes through: `[network] proxy`, or the demo's front door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebProxy {
    /// `host:port` (an IPv6 host in brackets).
    pub(crate) authority: String,
    /// Hosts WebKit reaches without the proxy (GLib's ignore-hosts: names, `.domain`,
    /// addresses, `address/prefix`).
    pub(crate) ignore_hosts: Vec<String>,
    /// What WebKit answers the proxy's `407` with; never for another host's challenge.
    pub(crate) credentials: Option<crate::config::ProxyCredentials>,
}

impl WebProxy {
    /// A loopback proxy for every host (the demo's and tests' front door).
    pub(crate) fn at(addr: std::net::SocketAddr) -> Self {
        Self {
            authority: addr.to_string(),
            ignore_hosts: Vec::new(),
            credentials: None,
        }
    }

    /// The proxy `[network]` names, if it names one.
    pub(crate) fn configured(network: &crate::config::NetworkSetting) -> Option<Self> {
        network.proxy().map(|p| Self {
            authority: p.authority(),
            ignore_hosts: p.bypass(),
            credentials: p.credentials.clone(),
        })
    }

    /// Whether a challenge from `host:port` is this proxy's (WebKit names the host without
    /// IPv6 brackets).
    pub(crate) fn is(&self, host: &str, port: u32) -> bool {
        let Some((h, p)) = self.authority.rsplit_once(':') else {
            return false;
        };
        h.trim_matches(['[', ']'])
            .eq_ignore_ascii_case(host.trim_matches(['[', ']']))
            && p.parse::<u32>().is_ok_and(|p| p == port)
    }
}

/// `url` without its query and fragment, for the log: a query may carry a token.
pub(crate) fn without_query(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::contained_view;

#[cfg(target_os = "linux")]
mod linux {
    use super::{ContextOptions, without_query};
    use webkit2gtk::gio;
    use webkit2gtk::glib;
    use webkit2gtk::{
        CookieManagerExt, DownloadExt, SecurityManagerExt, URIRequestExt, URISchemeRequestExt,
        URISchemeResponseExt, WebContextExt, WebsiteDataManagerExt,
    };

    /// A view of a new, contained context, for wry's `with_related_view`: the view wry builds
    /// then shares this context (and its web process). Must be called before any other web
    /// view of the process exists.
    pub(crate) fn contained_view(opts: &ContextOptions) -> anyhow::Result<webkit2gtk::WebView> {
        // Ephemeral: cookies, local storage and caches live in memory and die with the
        // process. A restart starts clean, and nothing a report stored is left on the disk.
        let ctx = webkit2gtk::WebContext::new_ephemeral();
        // WebKitGTK 4.1 leaves the sandbox off. Web processes run third-party JavaScript
        // (custom visuals): in bubblewrap they see no home, no /etc/pbikiosk, no secrets.
        ctx.set_sandbox_enabled(true);
        tracing::info!(
            sandbox = ctx.is_sandbox_enabled(),
            "WebKit web processes run in bubblewrap"
        );
        let data = ctx
            .website_data_manager()
            .ok_or_else(|| anyhow::anyhow!("the WebKit context has no website data manager"))?;
        // Power BI's embed frame needs its cookies: it is a third party to our app:// page,
        // and WebKit's default policy (no third-party cookies) and its tracking prevention
        // would refuse them. Accepting them widens nothing that matters here: the navigation
        // allow-list keeps every host but Power BI's from loading at all, in any frame.
        data.set_itp_enabled(false);
        let cookies = data
            .cookie_manager()
            .ok_or_else(|| anyhow::anyhow!("the WebKit context has no cookie manager"))?;
        cookies.set_accept_policy(webkit2gtk::CookieAcceptPolicy::Always);
        if let Some(proxy) = opts.proxy {
            let uri = format!("http://{}", proxy.authority);
            let ignore: Vec<&str> = proxy.ignore_hosts.iter().map(String::as_str).collect();
            tracing::info!(proxy = %uri, ignore_hosts = ?ignore, "the web view goes through a proxy");
            let mut settings = webkit2gtk::NetworkProxySettings::new(Some(&uri), &ignore);
            data.set_network_proxy_settings(
                webkit2gtk::NetworkProxyMode::Custom,
                Some(&mut settings),
            );
        }
        // Nothing on this screen asks for a file, and a report's "export data" or a custom
        // visual must not fill the device's disk.
        ctx.connect_download_started(|_, download| {
            let url = download
                .request()
                .and_then(|r| r.uri())
                .map(|u| without_query(&u))
                .unwrap_or_default();
            tracing::warn!(url, "download refused");
            download.cancel();
        });
        serve_page(&ctx, opts.web_dir.to_path_buf())?;
        Ok(webkit2gtk::WebView::builder().web_context(&ctx).build())
    }

    /// Serve `web_dir` on `app://localhost/`, a secure context like https.
    fn serve_page(ctx: &webkit2gtk::WebContext, web_dir: std::path::PathBuf) -> anyhow::Result<()> {
        ctx.security_manager()
            .ok_or_else(|| anyhow::anyhow!("the WebKit context has no security manager"))?
            .register_uri_scheme_as_secure("app");
        ctx.register_uri_scheme("app", move |request| {
            let path = request
                .uri()
                .and_then(|u| url::Url::parse(&u).ok())
                .filter(|u| u.host_str() == Some("localhost"))
                .map(|u| u.path().to_owned());
            let Some(path) = path else {
                request.finish_error(&mut glib::Error::new(
                    gio::IOErrorEnum::NotFound,
                    "only app://localhost/ is served",
                ));
                return;
            };
            let served = crate::shell::serve_asset(&web_dir, &path);
            let body = glib::Bytes::from(served.body().as_ref());
            let len = i64::try_from(body.len()).unwrap_or(i64::MAX);
            let stream = gio::MemoryInputStream::from_bytes(&body);
            let response = webkit2gtk::URISchemeResponse::new(&stream, len);
            response.set_status(u32::from(served.status().as_u16()), None);
            if let Some(ct) = served
                .headers()
                .get(wry::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
            {
                response.set_content_type(ct);
            }
            request.finish_with_response(&response);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_urls_lose_their_query() {
        assert_eq!(
            without_query("https://app.powerbi.com/export?token=abc#x"),
            "https://app.powerbi.com/export"
        );
        assert_eq!(without_query("not a url"), "(not a URL)");
    }
}
