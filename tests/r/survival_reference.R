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

# ---- clustered by child (issue 11): every band, test and interval the report shows
# the script above wrote out.csv; what follows appends to it
out <- list()
# Kaplan-Meier bands by group from the infinitesimal jackknife summed by child
fitc <- survfit(Surv(time, event) ~ group, data = d, conf.type = "log-log", cluster = id)
s <- summary(fitc, times = horizons, extend = TRUE)
grp <- sub("group=", "", as.character(s$strata))
for (i in seq_along(s$time)) {
  k <- paste0("kmc:", grp[i], ":", s$time[i])
  put(paste0(k, ":survival"), s$surv[i]); put(paste0(k, ":se"), s$std.err[i])
  put(paste0(k, ":ci_low"), s$lower[i]); put(paste0(k, ":ci_high"), s$upper[i])
}
# Aalen-Johansen by group, jackknife summed by child. survival 3.5's multi-state survfit takes a
# cluster argument but does not use it (survfitCI hands docurve2 the id, not the cluster), so the
# reference is R's own per-episode influence (influence = TRUE) summed by child with rowsum().
for (g in sort(unique(d$group))) {
  dg <- d[d$group == g, ]
  f <- survfit(Surv(time, state) ~ 1, data = dg, influence = TRUE)
  col <- which(f$states == "rereferral")
  for (h in horizons) {
    i <- suppressWarnings(max(which(f$time <= h)))
    if (!is.finite(i)) next
    ij <- rowsum(f$influence.pstate[, i + 1, col], dg$id)  # column 1 is time 0
    put(paste0("cifc:", g, ":", h), f$pstate[i, col]); put(paste0("cifc:", g, ":", h, ":se"), sqrt(sum(ij^2)))
  }
}
# robust score test (child-clustered) for an episode-level and a child-level factor
for (v in c("group", "cgroup")) {
  cx <- coxph(as.formula(paste("Surv(time, event) ~", v, "+ cluster(id)")), data = d)
  put(paste0("rscore:", v, ":statistic"), cx$rscore); put(paste0("rscore:", v, ":df"), length(coef(cx)))
  put(paste0("logrank:", v, ":statistic"), survdiff(as.formula(paste("Surv(time, event) ~", v)), data = d)$chisq)
  cb <- coxph(as.formula(paste("Surv(time, event) ~", v, "+ cluster(id)")), data = d, ties = "breslow")
  put(paste0("rscore:", v, ":breslow"), cb$rscore)
}
# RMST to 365 days by group: se(rmean) (unclustered) and the jackknife summed by child
tau <- 365
ij_by_group <- list()
for (g in sort(unique(d$group))) {
  dg <- d[d$group == g, ]
  f <- survfit(Surv(time, event) ~ 1, data = dg, cluster = id, influence = TRUE)
  tt <- f$time[f$time < tau]
  widths <- diff(c(tt, tau))
  infl <- f$influence.surv[, seq_along(tt), drop = FALSE]   # children x times
  ij <- drop(infl %*% widths)
  ij_by_group[[g]] <- ij  # named by child
  put(paste0("rmstc:", g, ":se"), sqrt(sum(ij^2)))
  put(paste0("rmstc:", g, ":episodes"), nrow(dg))
  put(paste0("rmstc:", g, ":se_unclustered"), summary(survfit(Surv(time, event) ~ 1, data = dg), rmean = tau)$table[["se(rmean)"]])
}
# the difference of each group from the largest, its jackknife summed by child across both groups
ref_g <- names(which.max(table(d$group)))
for (g in setdiff(names(ij_by_group), ref_g)) {
  ids <- union(names(ij_by_group[[g]]), names(ij_by_group[[ref_g]]))
  a <- ij_by_group[[g]][ids]; a[is.na(a)] <- 0
  b <- ij_by_group[[ref_g]][ids]; b[is.na(b)] <- 0
  put(paste0("rmstdiff:", g, ":se"), sqrt(sum((a - b)^2)))
}
# cox.zph (survival >= 3.0, the exact score test), Efron, per term and global, three transforms
cz <- coxph(Surv(time, event) ~ x1 + x2 + x3 + cgroup, data = d)
for (tr in c("km", "rank", "identity")) {
  z <- cox.zph(cz, transform = tr)$table
  for (r in rownames(z)) {
    put(paste0("zph:", tr, ":", r, ":chisq"), z[r, "chisq"]); put(paste0("zph:", tr, ":", r, ":df"), z[r, "df"])
  }
}
write.table(data.frame(key = names(out), value = unlist(out)), args[2], row.names = FALSE, col.names = FALSE,
            sep = ",", append = TRUE)
