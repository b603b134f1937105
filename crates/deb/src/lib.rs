//! `spindle-deb`: the .deb engine of Spindle. It builds Debian binary packages from small
//! TOML specs, reads any real .deb, and knows dpkg's rules for versions, names, control
//! paragraphs and package relationships. The apt repository layer (repos, snapshots,
//! publishing, mirrors) and the CLI/daemon sit on top of it.
//!
//! It is a pure library: no daemon, no HTTP, no SQL, no global state. File system access
//! happens only at the edges ([`spec::load_spec`], [`spec::Spec::resolve`],
//! [`reader::read_deb_file`]); everything else works on bytes, readers and writers.
//!
//! # Entry points
//!
//! | task | call |
//! |---|---|
//! | build a .deb from a spec file | [`spec::build_from_file`]`(path, source_date_epoch) -> Result<`[`builder::BuiltDeb`]`, `[`spec::SpecError`]`>` |
//! | check a spec without building (e.g. `spindle up` planning) | [`spec::load_spec`]`(path)`, then [`spec::Spec::resolve`] |
//! | check a spec and read its sources, reporting all problems at once | [`spec::load_and_resolve`]`(path) -> Result<`[`spec::ResolvedSpec`]`, _>` |
//! | build from an in-memory package | [`builder::build_deb`]`(&Package, &BuildOptions)` or [`builder::write_deb`] to any `Write` |
//! | read a .deb (control, control members, data entries, digests) | [`reader::read_deb`]`(impl Read)` / [`reader::read_deb_file`]`(path)` -> [`reader::DebInfo`] |
//! | refuse unsafe contents (`..`, absolute paths, devices, fifos, hard links, escaping symlinks) | [`reader::validate_data_entries`] |
//! | a `Packages` index paragraph | [`index::packages_paragraph`]`(&control, filename, &digests)` |
//! | whole-file size and MD5/SHA1/SHA256/SHA512 | [`digest::digest_reader`], [`digest::digest_bytes`] (also [`reader::DebInfo::digests`]) |
//! | versions in dpkg order | [`version::Version::parse`], `Ord` |
//! | `Depends`-style fields | [`relation::Relations::parse`] |
//! | deb822 paragraphs (`control`, `Packages`, `Release`) | [`control::parse_paragraph`], [`control::parse_paragraphs`], `Display` |
//! | names | [`names::validate_package_name`], [`names::validate_architecture`] |
//!
//! # Reproducible builds
//!
//! The same spec, source files and `SOURCE_DATE_EPOCH` give a byte-identical package: tar
//! entries are sorted with parents first, every mtime (tar entries and ar members) is the
//! epoch, owners are numeric (uid/gid 0 carry the name `root`, nothing else gets a name),
//! file modes come from the spec (or the source's executable bit), and compressors run
//! single-threaded at fixed levels with gzip's header mtime 0. The caller passes the epoch;
//! reading the `SOURCE_DATE_EPOCH` environment variable is the CLI's job.
//!
//! # Package layout written
//!
//! Like `dpkg-deb --root-owner-group`: an ar archive of `debian-binary` (`2.0`),
//! `control.tar.{gz,xz,zst}` or uncompressed (`./control`, `./md5sums`, `./conffiles`,
//! maintainer scripts 0755) and `data.tar` with the same compression (GNU tar headers,
//! `./`-prefixed names, long names via `././@LongLink`). `Installed-Size` follows
//! dpkg-gencontrol: each file and symlink rounded up to whole KiB, 1 KiB per directory
//! including the root.
//!
//! # Strictness
//!
//! Where dpkg only warns (a version whose upstream part does not start with a digit, odd
//! characters) or is lax (upper case package names), this crate rejects: a repository should
//! not accept what dpkg complains about. Package names follow Debian policy
//! (`[a-z0-9][a-z0-9+.-]+`), except that relationship fields may name one-character
//! packages. Every error is a typed enum per module carrying the path, field or entry it is
//! about; malformed input never panics.
//!
//! # Testing against the real tools
//!
//! The integration tests run `dpkg-deb --info/--contents/--field/--build`,
//! `dpkg --install/--remove/--purge` into a private `--instdir`/`--admindir`,
//! `dpkg-query`, `dpkg-scanpackages`, `dpkg --compare-versions` (property test),
//! `apt-get download`, `ar` and the coreutils digest tools.

pub mod ar;
pub mod builder;
pub mod compress;
pub mod control;
pub mod digest;
pub mod fields;
mod gz;
pub mod index;
pub mod names;
pub mod reader;
pub mod relation;
pub mod spec;
mod tarw;
pub mod version;

pub use builder::{build_deb, BuildOptions, BuiltDeb, Package};
pub use compress::Compression;
pub use control::Paragraph;
pub use digest::FileDigests;
pub use reader::{read_deb, read_deb_file, validate_data_entries, DebInfo};
pub use relation::Relations;
pub use spec::build_from_file;
pub use version::Version;
