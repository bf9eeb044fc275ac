//! multiret-train (work in progress).
