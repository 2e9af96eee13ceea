"""From structures to discovery: compositions of a chemical system, an existence model that ranks them, their
structures searched and placed on a convex hull of formation energy, and a benchmark that rediscovers known compounds."""
