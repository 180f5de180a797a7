pub(crate) mod lan;
