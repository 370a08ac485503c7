"""Inference engines: exact enumeration and Gibbs sampling."""
