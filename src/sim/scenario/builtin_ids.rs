//! Built-in tenant and app ids: stable so that screenshots, docs and configs do not churn.

pub const TENANT_ID: &str = "8a3c1f52-7d4e-4b6a-9c2f-1e5d7b9a3c40";
pub const TENANT_DOMAIN: &str = "contoso-demo.onmicrosoft.com";
pub const FEDERATED_DOMAIN: &str = "fabrikam-demo.com";
pub const APP_ID: &str = "6d3f8a52-1b7e-4c19-9a2d-5e8b7c4f1a30";
/// Shaped like a real secret value (40 chars with a `~`); only valid against the simulator.
pub const APP_SECRET: &str = "Sim8Q~kioskDemoSecret.NotReal-0123456789";
pub const EXPIRED_APP_ID: &str = "b2e4c6a8-3d5f-4e7a-8b9c-0d1e2f3a4b5c";
pub const UNCONSENTED_APP_ID: &str = "c7d9e1f3-5a7b-4c9d-8e0f-1a2b3c4d5e6f";
pub const PASSWORD: &str = "Kiosk-Demo-Passw0rd!";
pub const WS_SALES: &str = "3f2a9b1c-6d4e-4f8a-b1c2-d3e4f5a6b7c8";
pub const WS_OPERATIONS: &str = "5b7d9f1a-2c4e-4a6b-8d0f-1e3a5c7e9b2d";
pub const WS_SERVICE: &str = "7c9e1a3b-5d7f-4b9c-a1e3-5f7b9d1c3e5a";
pub const WS_FINANCE: &str = "9e1b3d5f-7a9c-4e1f-b3a5-7c9e1b3d5f7a";
pub const REPORT_SALES: &str = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
pub const REPORT_OPERATIONS: &str = "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e";
pub const REPORT_SERVICE: &str = "3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f";
pub const REPORT_BUDGET: &str = "4d5e6f7a-8b9c-4d0e-9f2a-3b4c5d6e7f80";
pub const DASHBOARD_EXEC: &str = "5e6f7a8b-9c0d-4e1f-a3b4-c5d6e7f8091a";
/// The Sales Overview report's saved bookmarks (named like Power BI's: `Bookmark` + 20 hex).
pub const BOOKMARK_NORTH: &str = "Bookmark5d1f3b8e2a4c6e0f9a71";
pub const BOOKMARK_ONLINE: &str = "Bookmark9c2e7a4f1b3d5e8c0a62";
