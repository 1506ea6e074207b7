//! The options `seal` and `open` share: which key ring, and the cookie settings the server
//! uses, since the cookie name is bound into every token.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::Args;
use sealed_session::{Mode, SessionCodec, SessionConfig, SessionConfigBuilder};

use crate::failure::Failure;
use crate::ring_file;

/// Key ring and cookie settings; they must match the server's configuration.
#[derive(Debug, Args)]
pub struct CodecArgs {
    /// The key ring file.
    #[arg(long, value_name = "FILE")]
    pub keys: PathBuf,

    /// The cookie base name given to `SessionConfig::builder`, e.g. `session`. The `__Host-`
    /// prefix is added as the library adds it by default.
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// Use NAME as is, without the `__Host-` prefix: for servers whose cookie name has none
    /// (`host_prefix(false)`, a cookie domain, a path other than `/`, or Secure off).
    #[arg(long)]
    pub no_host_prefix: bool,

    /// Signed mode (readable by the client, tamper-proof) instead of the default sealed mode.
    #[arg(long)]
    pub signed: bool,

    /// The deployment purpose the server binds into its tokens (`SessionConfigBuilder::purpose`),
    /// if it configures one.
    #[arg(long, value_name = "PURPOSE")]
    pub purpose: Option<String>,
}

impl CodecArgs {
    /// A codec over the key ring file as it stands at `now` (which keys are active), configured
    /// by these options and then by `configure`.
    ///
    /// # Errors
    ///
    /// A key ring failure (exit 3), or a usage failure (exit 2) for an invalid configuration.
    pub fn codec(
        &self,
        now: SystemTime,
        configure: impl FnOnce(SessionConfigBuilder) -> SessionConfigBuilder,
    ) -> Result<SessionCodec, Failure> {
        let ring = ring_file::load(&self.keys, now)?;
        let mode = if self.signed { Mode::Signed } else { Mode::Sealed };
        let mut builder =
            SessionConfig::builder(self.name.clone()).host_prefix(!self.no_host_prefix).mode(mode);
        if let Some(purpose) = &self.purpose {
            builder = builder.purpose(purpose.clone());
        }
        Ok(SessionCodec::new(configure(builder).build()?, ring))
    }
}
