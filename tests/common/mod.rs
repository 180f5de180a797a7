pub(crate) mod lan;
pub(crate) mod nodes;
