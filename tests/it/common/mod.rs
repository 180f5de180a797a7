pub(crate) mod browser;
pub(crate) mod lan;
pub(crate) mod nodes;
