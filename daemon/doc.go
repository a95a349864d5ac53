// Package daemon runs mlfs: it assembles the storage stack (the one place
// that decides which wrappers sit over which backend) and, in time, serves
// the mount and the socket the CLI talks to.
package daemon
