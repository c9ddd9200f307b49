//! Mock Proxmox VE API server.
