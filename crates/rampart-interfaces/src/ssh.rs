//! `org.rampart.Ssh1`: sshd configuration and the SSH keys store, served by rampart-sshconfd (being written).
