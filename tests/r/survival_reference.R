# Reference values from R's survival package for tests/test_survival_r.py.
# Usage: Rscript survival_reference.R episodes.csv out.csv
# episodes.csv: time, status (0 censored, 1 re-referral, 2 competing), group, x1, x2, id
# out.csv: key,value lines (plain CSV, no packages beyond survival).
suppressPackageStartupMessages(library(survival))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE)
d$event <- as.integer(d$status == 1)
out <- list()
put <- function(key, value) out[[key]] <<- value

# Kaplan-Meier by group, log-log band as lifelines, numbers at risk at horizons
horizons <- c(30, 91, 182, 365)
fit <- survfit(Surv(time, event) ~ group, data = d, conf.type = "log-log")
s <- summary(fit, times = horizons, extend = TRUE)
grp <- sub("group=", "", as.character(s$strata))
for (i in seq_along(s$time)) {
  k <- paste0("km:", grp[i], ":", s$time[i])
  put(paste0(k, ":survival"), s$surv[i]); put(paste0(k, ":ci_low"), s$lower[i])
  put(paste0(k, ":ci_high"), s$upper[i]); put(paste0(k, ":at_risk"), s$n.risk[i])
}
# RMST to 365 days with its standard error, by group
tab <- summary(fit, rmean = 365)$table
for (i in seq_len(nrow(tab))) {
  g <- sub("group=", "", rownames(tab)[i])
  put(paste0("rmst:", g, ":rmst"), tab[i, "rmean"]); put(paste0("rmst:", g, ":se"), tab[i, "se(rmean)"])
}
# log-rank
lr <- survdiff(Surv(time, event) ~ group, data = d)
put("logrank:statistic", lr$chisq); put("logrank:df", length(lr$n) - 1)
# Cox, Efron and Breslow, robust errors clustered by child
for (ties in c("efron", "breslow")) {
  cx <- coxph(Surv(time, event) ~ x1 + x2 + cluster(id), data = d, ties = ties)
  for (v in names(coef(cx))) {
    put(paste0("cox:", ties, ":", v, ":coef"), coef(cx)[[v]])
    put(paste0("cox:", ties, ":", v, ":robust_se"), sqrt(diag(cx$var))[match(v, names(coef(cx)))])
    put(paste0("cox:", ties, ":", v, ":naive_se"), sqrt(diag(cx$naive.var))[match(v, names(coef(cx)))])
  }
}
# Aalen-Johansen cumulative incidence of re-referral with the competing event
d$state <- factor(d$status, levels = 0:2, labels = c("censor", "rereferral", "competing"))
aj <- survfit(Surv(time, state) ~ 1, data = d)
sa <- summary(aj, times = horizons, extend = TRUE)
col <- which(aj$states == "rereferral")
for (i in seq_along(sa$time)) put(paste0("cif:", sa$time[i]), sa$pstate[i, col])
write.csv(data.frame(key = names(out), value = unlist(out)), args[2], row.names = FALSE)
