"""k-nearest neighbours whose answer does not depend on how many threads the machine offers."""

from __future__ import annotations

from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits


class ThreadStableKNeighborsClassifier(KNeighborsClassifier):
    """KNeighborsClassifier that finds neighbours on one OpenMP thread, as the train stage does.

    For few query rows (under 1,024 per thread) scikit-learn splits the training rows across threads, so the blocks its
    distances are summed in (||x||² - 2x·y + ||y||²) follow the thread count. Duplicate training rows (polymorphs of one
    formula) are exactly tied, and which of them take the k-th place then changed with the thread count: a model saved
    by a one-thread train stage scored 0.4243 on its validation rows there and 0.4264 on a two-thread machine.
    """

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """The neighbours' distances and indices, found on one thread."""
        with threadpool_limits(limits=1, user_api="openmp"):
            return super().kneighbors(X, n_neighbors, return_distance)
