package server

import "gatehouse/store/cached"

// The store cache is what certOwners reads every account's keys from,
// when the portal runs with it.
var _ accountKeyser = (*cached.Store)(nil)
