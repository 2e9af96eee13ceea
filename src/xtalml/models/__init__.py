"""Models: scikit-learn pipelines and torch networks, all with fit / predict (/ predict_proba)."""
