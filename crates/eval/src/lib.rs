//! multiret-eval (work in progress).
