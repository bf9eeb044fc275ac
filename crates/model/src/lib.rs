//! multiret-model (work in progress).
