include!("../build-support/version.rs");
