//! Journal fields Rampart's own services emit for authentication events, read by rampart-guardd (being written).
