//! Proxmox VE API types: models generated from the official schema plus hand-written Proxmox types.
