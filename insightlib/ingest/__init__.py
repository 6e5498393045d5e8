"""Reading and checking data: each module turns one family of source files into contract tables."""
